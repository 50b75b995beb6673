/*
 * fuzz_pgoutput.c: libFuzzer target for src/pgoutput.c (the replication
 * framing and the pgoutput decoder).
 *
 * Input format, chosen so that one input drives a decoder through a
 * sequence of messages (and so through its stream state):
 *   byte 0         mode: protocol version = 1 + (mode & 3)
 *   then records   Int16 length (big-endian), then that many bytes (the
 *                  last record takes whatever is left if the length is
 *                  larger)
 * Each record is decoded as a pgoutput message by one decoder for the whole
 * input, and parsed as a CopyData frame; when it is an XLogData frame its
 * payload also goes to a second decoder. The whole input after the mode
 * byte is parsed as a frame too. Every record is copied into an allocation
 * of exactly its size, so AddressSanitizer sees any read past the end.
 *
 * Beyond "no crash, no leak, no UB" the target checks the contract: a
 * decoded message has the kind of its first byte and every borrowed
 * pointer lies inside the record; a failure leaves a non-empty,
 * NUL-terminated reason and does not move the stream state; Stream Start
 * and Stream Stop move it. Violations abort().
 *
 * Build and run (see the report for the Makefile target):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *         -Isrc -D_GNU_SOURCE tests/fuzz/fuzz_pgoutput.c src/pgoutput.c src/mem.c \
 *         -o build/fuzz_pgoutput
 *   build/fuzz_pgoutput -max_total_time=150 build/fuzz-corpus tests/fuzz/corpus
 * tests/fuzz/mkseed.sh turns hex messages into seeds in this format.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "pgoutput.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static volatile unsigned sink;

/* [p, p+n) lies inside [base, base+len) */
static bool
inside(const char *p, size_t n, const char *base, size_t len)
{
	uintptr_t	a = (uintptr_t) p,
				b = (uintptr_t) base;

	return a >= b && a - b <= len && n <= len - (a - b);
}

/* Read every byte of a borrowed span: ASan checks it, CHECK bounds it. */
static void
touch(const char *p, size_t n, const char *base, size_t len)
{
	unsigned	h = 0;

	if (n == 0)
		return;
	CHECK(p != NULL && inside(p, n, base, len));
	for (size_t i = 0; i < n; i++)
		h = h * 31 + (unsigned char) p[i];
	sink += h;
}

static void
touch_string(const char *s, const char *base, size_t len)
{
	CHECK(s != NULL);
	/* either borrowed (NUL inside the record) or the static "pg_catalog" */
	if (inside(s, 1, base, len))
		touch(s, strlen(s) + 1, base, len);
	else
		CHECK(strcmp(s, "pg_catalog") == 0);
}

static void
touch_tuple(const PgoTuple *t, const char *base, size_t len)
{
	CHECK(t->ncols >= 0 && (size_t) t->ncols <= len);
	for (int i = 0; i < t->ncols; i++)
	{
		const PgoColumn *c = &t->cols[i];

		CHECK(c->kind == 'n' || c->kind == 'u' || c->kind == 't' || c->kind == 'b');
		if (c->kind == 't' || c->kind == 'b')
			touch(c->data, c->len, base, len);
		else
			CHECK(c->data == NULL && c->len == 0);
	}
}

static void
touch_message(const PgoMessage *m, const char *base, size_t len)
{
	PgoRelation *copy;

	CHECK(len > 0 && m->kind == base[0]);
	switch (m->kind)
	{
		case 'O':
			touch_string(m->u.origin.name, base, len);
			break;
		case 'R':
			sink += (unsigned) strlen(m->u.relation.nspname) + (unsigned) strlen(m->u.relation.relname);
			CHECK(m->u.relation.ncols >= 0 && (size_t) m->u.relation.ncols * 10 <= len);
			copy = pgo_relation_copy(&m->u.relation);
			for (int i = 0; i < copy->ncols; i++)
				sink += (unsigned) strlen(copy->cols[i].name) + copy->cols[i].typoid;
			pgo_relation_free(copy);
			break;
		case 'Y':
			touch_string(m->u.type.nspname, base, len);
			touch_string(m->u.type.typname, base, len);
			break;
		case 'I':
			touch_tuple(&m->u.insert.newtup, base, len);
			break;
		case 'U':
			CHECK(m->u.update.oldkind == 0 || m->u.update.oldkind == 'K' || m->u.update.oldkind == 'O');
			touch_tuple(&m->u.update.oldtup, base, len);
			touch_tuple(&m->u.update.newtup, base, len);
			break;
		case 'D':
			CHECK(m->u.delete_.oldkind == 'K' || m->u.delete_.oldkind == 'O');
			touch_tuple(&m->u.delete_.oldtup, base, len);
			break;
		case 'T':
			CHECK(m->u.truncate.nrelids >= 0 && (size_t) m->u.truncate.nrelids * 4 <= len);
			for (int i = 0; i < m->u.truncate.nrelids; i++)
				sink += m->u.truncate.relids[i];
			break;
		case 'M':
			touch_string(m->u.message.prefix, base, len);
			touch(m->u.message.content, m->u.message.len, base, len);
			break;
		default:
			break;
	}
}

/* Decode one record with d, checking the contract around the call. */
static void
decode_one(PgoDecoder *d, const uint8_t *p, size_t n)
{
	char	   *copy = xmalloc(n);
	char		err[256];
	PgoMessage	m;
	bool		before = pgo_in_stream(d);

	if (n > 0)
		memcpy(copy, p, n);
	memset(err, 0x7f, sizeof(err));
	if (pgo_decode(d, n ? copy : NULL, n, &m, err, sizeof(err)))
	{
		touch_message(&m, copy, n);
		if (m.kind == 'S')
			CHECK(!before && pgo_in_stream(d));
		else if (m.kind == 'E')
			CHECK(before && !pgo_in_stream(d));
		else
			CHECK(before == pgo_in_stream(d));
	}
	else
	{
		CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
		CHECK(before == pgo_in_stream(d));
	}
	free(copy);
}

static void
frame_one(PgoDecoder *d, const uint8_t *p, size_t n)
{
	char	   *copy = xmalloc(n);
	char		err[256];
	ReplFrame	f;

	if (n > 0)
		memcpy(copy, p, n);
	memset(err, 0x7f, sizeof(err));
	if (repl_parse_frame(n ? copy : NULL, n, &f, err, sizeof(err)))
	{
		if (f.kind == REPL_XLOGDATA)
		{
			CHECK(n >= REPL_XLOGDATA_HEADER && f.data == copy + REPL_XLOGDATA_HEADER &&
				  f.len == n - REPL_XLOGDATA_HEADER);
			if (d)
				decode_one(d, (const uint8_t *) f.data, f.len);
		}
		else
			CHECK(f.kind == REPL_KEEPALIVE && n == REPL_KEEPALIVE_SIZE);
	}
	else
		CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PgoDecoder *d;
	PgoDecoder *framed;
	size_t		pos = 1;
	int			proto;

	if (size < 1)
		return 0;
	proto = 1 + (data[0] & 3);
	d = pgo_decoder_new(proto);
	framed = pgo_decoder_new(proto);
	CHECK(d != NULL && framed != NULL);

	frame_one(NULL, data + 1, size - 1);
	while (pos < size)
	{
		size_t		n;

		if (size - pos < 2)
			n = size - pos;		/* a lone trailing byte is a 1-byte record */
		else
		{
			n = (size_t) data[pos] << 8 | data[pos + 1];
			pos += 2;
			if (n > size - pos)
				n = size - pos;
		}
		decode_one(d, data + pos, n);
		frame_one(framed, data + pos, n);
		pos += n;
	}
	pgo_decoder_free(d);
	pgo_decoder_free(framed);
	return 0;
}
