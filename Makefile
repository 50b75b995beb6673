# ferry build. Plain make: `make` builds build/ferry; `make check` installs what
# is missing, builds an AddressSanitizer/UBSan binary and runs every test;
# `make demo` runs the live migration demo. See README.md.

PREFIX   ?= /usr/local
CC       ?= cc
PKGS      = libpq yaml-0.1 jansson libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libpq's pkg-config file does not always point at the server-side includes
PKG_CFLAGS += -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

WARN     = -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter -Wmissing-prototypes \
           -Wstrict-prototypes -Wvla -Wimplicit-fallthrough
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -pthread $(WARN) $(PKG_CFLAGS) $(CFLAGS)
LIBS     = $(PKG_LIBS) -pthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

SRC  = $(wildcard src/*.c)
LIBSRC = $(filter-out src/main.c,$(SRC))
OBJ  = $(SRC:src/%.c=build/obj/%.o)
AOBJ = $(SRC:src/%.c=build/asan/obj/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=build/asan/%)

.PHONY: all deps build-deps asan unit check test torture install demo bench clean compile_commands fuzz pg-majors

all: build/ferry

deps:
	@scripts/install-deps.sh

# Before any compile: the libraries' development files, by pkg-config name and
# the Debian package that has them; a missing one is named with the fix
# instead of a compiler's "jansson.h: No such file or directory".
BUILD_DEPS = libpq:libpq-dev yaml-0.1:libyaml-dev jansson:libjansson-dev libmicrohttpd:libmicrohttpd-dev
build-deps:
	@missing=""; command -v pkg-config >/dev/null 2>&1 || missing=" pkg-config"; \
	for d in $(BUILD_DEPS); do pkg-config --exists "$${d%%:*}" 2>/dev/null || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "ferry: cannot build: missing Debian packages:$$missing. Fix: make deps (installs them and the test tools with apt-get), or: sudo apt-get install$$missing" >&2; \
	  exit 1; fi

build/ferry: $(OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $(OBJ) $(LIBS)

build/obj/%.o: src/%.c $(wildcard src/*.h) | build/obj build-deps
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/asan/ferry: $(AOBJ)
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $(AOBJ) $(LIBS)

build/asan/obj/%.o: src/%.c $(wildcard src/*.h) | build/asan/obj build-deps
	$(CC) $(ALL_CFLAGS) $(SAN) -c -o $@ $<

build/asan/test_%: tests/unit/test_%.c tests/unit/tap.h $(filter-out build/asan/obj/main.o,$(AOBJ))
	$(CC) $(ALL_CFLAGS) $(SAN) -Isrc -o $@ $< $(filter-out build/asan/obj/main.o,$(AOBJ)) $(LIBS)

build/obj build/asan/obj:
	mkdir -p $@

asan: build/asan/ferry

unit: $(UNIT_BIN) build/asan/pgoutput_dump

# The PostgreSQL majors of the cross-version tests (tests/t/18*_xver_*.t),
# built from Debian's source packages into ${FERRY_CACHE:-/var/cache/ferry}
# once (~4 min for 13, ~7 for 18 at -j2; nothing when cached): outside the
# timed tests. A major no mirror serves (exit 3) is skipped, its tests too.
PG_MAJORS ?= 13 17 18
pg-majors: deps
	@for m in $(PG_MAJORS); do scripts/build-pg.sh $$m >/dev/null || [ $$? -eq 3 ] || exit 1; done

# Every test: unit tests (pure code) and integration tests against throwaway
# PostgreSQL servers, all run by prove (TAP), with the sanitizer build.
check: deps pg-majors
	$(MAKE) --no-print-directory asan unit
	FERRY=$(CURDIR)/build/asan/ferry prove -f $(PROVE_FLAGS) $(UNIT_BIN) tests/t/*.t

test: check

# the fault campaign (tests/t/170_torture.t) with more rounds than check runs:
# make torture [ROUNDS=50] [SEED=N|random] [FAULTS="kill9 lock_target"]
ROUNDS ?= 50
torture: deps
	$(MAKE) --no-print-directory asan
	ROUNDS=$(ROUNDS) $(if $(SEED),SEED=$(SEED)) $(if $(FAULTS),FAULTS="$(FAULTS)") \
	  FERRY=$(CURDIR)/build/asan/ferry prove -v $(PROVE_FLAGS) tests/t/170_torture.t

# the manual page is troff source (doc/ferry.1): installed as is, nothing to build;
# the systemd unit is inert until enabled (contrib/ferry@.service says how);
# its ExecStart follows PREFIX
install: build/ferry
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 build/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	install -m 644 doc/ferry.1 $(DESTDIR)$(PREFIX)/share/man/man1/ferry.1
	sed 's|/usr/local/bin/ferry|$(PREFIX)/bin/ferry|' contrib/ferry@.service >$(DESTDIR)$(PREFIX)/lib/systemd/system/ferry@.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/ferry@.service

# the demo's application stand-in (also used by bench/switchover.sh)
build/writer: bench/writer.c | build/obj
	$(CC) -O2 -Wall -o $@ $< $(PKG_CFLAGS) $(PKG_LIBS)

# a sub-make after deps: on a fresh machine pkg-config's flags exist only then
demo: deps
	$(MAKE) --no-print-directory all build/writer
	scripts/demo.sh

bench: deps
	@scripts/install-deps.sh --bench
	$(MAKE) --no-print-directory all
	bench/clone.sh

compile_commands:
	bear -- $(MAKE) -B all

clean:
	rm -rf build

# the pgoutput test driver (tests/t/060 builds it itself when missing)
build/asan/pgoutput_dump: tests/unit/pgoutput_dump.c src/pgoutput.c src/pgoutput.h src/mem.c src/mem.h | build/asan/obj
	$(CC) $(ALL_CFLAGS) $(SAN) -Isrc -o $@ tests/unit/pgoutput_dump.c src/pgoutput.c src/mem.c

# libFuzzer target for the pgoutput decoder: make fuzz [FUZZ_TIME=150]
FUZZ_CC   ?= clang
FUZZ_TIME ?= 150
build/fuzz_pgoutput: tests/fuzz/fuzz_pgoutput.c src/pgoutput.c src/pgoutput.h src/mem.c src/mem.h | build/obj
	$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Isrc -o $@ tests/fuzz/fuzz_pgoutput.c src/pgoutput.c src/mem.c

fuzz: build/fuzz_pgoutput
	mkdir -p build/fuzz-corpus build/fuzz-artifacts
	build/fuzz_pgoutput -max_total_time=$(FUZZ_TIME) -malloc_limit_mb=64 -print_final_stats=1 \
	  -artifact_prefix=build/fuzz-artifacts/ build/fuzz-corpus tests/fuzz/corpus
