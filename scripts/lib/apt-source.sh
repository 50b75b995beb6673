# apt-source.sh: fetch a Debian source package through this machine's own
# apt sources, and build things from it into a cache, once. Sourced by
# scripts/regress-db.sh (postgresql-15's regression suite) and
# scripts/build-pg.sh (other PostgreSQL majors).
#
# No mirror is named here: the deb-src entries are derived from the Debian
# entries of /etc/apt/sources.list and /etc/apt/sources.list.d/ (one-line and
# deb822 formats). An entry is Debian's when one of its suites is this
# release's (CODENAME, CODENAME-updates, CODENAME-security); another suite
# (bullseye-security, forky, ...) is reached through the same URI as this
# release's suite of the same kind (security or not), with the same
# Signed-By. apt runs with private state (lists, cache) under a work
# directory: the machine's own package lists are never touched.
#
# Verification: apt checks each downloaded file (the .dsc and every tarball)
# against the checksums of the signed Sources index; dpkg-source then checks
# every tarball against the .dsc's size and checksums again before unpacking.
#
# Cache discipline (apt_cache_lock, apt_cache_newest): everything is built in
# a temporary directory beside its final place and renamed into it when
# complete, under a lock, so a half-built tree is never used and a second run
# finds the work done.
#
# The caller sets APT_SOURCE_TAG (its name in log lines) before use.

apt_log() { printf '%s %s: %s\n' "$(date +%H:%M:%S)" "${APT_SOURCE_TAG:-apt-source}" "$*" >&2; }
apt_now() { date +%s.%N; }
apt_took() { awk -v a="$1" -v b="$(apt_now)" 'BEGIN { printf "%.1f s", b - a }'; }

# apt_debian_entries: one line per enabled Debian entry of this machine,
# tab-separated: KIND (security or main), URI, SUITE, COMPONENTS (space
# separated), SIGNED-BY (may be empty). Only this release's suites count.
apt_debian_entries() {
  local codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 0
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # one-line format: deb [options] URI SUITE COMPONENT...
    awk -v cn="$codename" -v OFS='\t' '
      $1 == "deb" {
        i = 2; opts = ""
        if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ }; opts = opts " " $i; i++ }
        uri = $i; suite = $(i + 1); comps = ""
        for (j = i + 2; j <= NF && $j !~ /^#/; j++) comps = comps (comps == "" ? "" : " ") $j
        if (suite != cn && suite !~ "^" cn "-(updates|security)$") next
        signed = ""
        if (match(opts, /signed-by=[^] ]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
        print (suite ~ /-security$/ ? "security" : "main"), uri, suite, comps, signed
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: stanzas separated by blank lines; keep enabled "deb" stanzas of this release
    awk -v cn="$codename" -v OFS='\t' '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "" && suites != "") {
          n = split(suites, s, " "); m = split(uris, u, " ")
          for (k = 1; k <= n; k++)
            if (s[k] == cn || s[k] ~ "^" cn "-(updates|security)$")
              for (l = 1; l <= m; l++)
                print (s[k] ~ /-security$/ ? "security" : "main"), u[l], s[k], comps, signed
        }
        types = uris = suites = comps = signed = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val; else if (key == "uris") uris = val
        else if (key == "suites") suites = val; else if (key == "components") comps = val
        else if (key == "signed-by") signed = val; else if (key == "enabled") enabled = tolower(val) }
      END { flush() }' "$f"
  done
}

# apt_deb_src_list [SUITE...]: a deb822 list of deb-src entries. Without
# arguments, the deb-src twin of each of this release's Debian entries; with
# SUITEs, those suites, each through every URI of its kind (a suite ending
# in -security through this release's security URIs, any other through the
# main ones). Prints nothing when the machine has no Debian entry.
apt_deb_src_list() {
  local entries kind uri suite comps signed want s
  entries=$(apt_debian_entries)
  [ -n "$entries" ] || return 0
  if [ $# -eq 0 ]; then
    while IFS=$'\t' read -r kind uri suite comps signed; do
      printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n' "$uri" "$suite" "$comps"
      [ -n "$signed" ] && printf 'Signed-By: %s\n' "$signed"
      printf '\n'
    done <<<"$entries"
    return 0
  fi
  # one stanza per distinct (kind, URI): the first entry's components and key
  while IFS=$'\t' read -r kind uri comps signed; do
    want=""
    for s in "$@"; do
      case "$s" in *-security) [ "$kind" = security ] ;; *) [ "$kind" = main ] ;; esac && want="$want $s"
    done
    [ -n "$want" ] || continue
    printf 'Types: deb-src\nURIs: %s\nSuites:%s\nComponents: %s\n' "$uri" "$want" "$comps"
    [ -n "$signed" ] && printf 'Signed-By: %s\n' "$signed"
    printf '\n'
  done < <(awk -F'\t' -v OFS='\t' '!seen[$1 FS $2]++ { print $1, $2, $4, $5 }' <<<"$entries")
}

# apt_source_fetch DIR PACKAGE "FIRST_VERSIONS" [SUITE...]: download PACKAGE's
# source package and unpack it (Debian's patches applied) into DIR/src, with
# private apt state under DIR/apt; DIR/dl keeps the downloaded files. The
# versions in FIRST_VERSIONS (space separated, may be empty) are tried
# first, then every version the indexes list, newest first (a mirror may
# lack the files of one of them). SUITEs as for apt_deb_src_list. The apt
# state lives in APT_SOURCE_STATE when set (kept between runs, under the
# caller's lock: an unchanged index is not downloaded again), else in
# DIR/apt. Sets APT_SOURCE_VERSION to the Debian version fetched. Returns
# 0, 1 when the package does not unpack (a checksum failed), 3 when no
# source can be had.
apt_source_fetch() {
  local dir=$1 pkg=$2 first=$3 apt_opts v tried="" listed st
  shift 3
  st=${APT_SOURCE_STATE:-$dir/apt}
  APT_SOURCE_VERSION=""
  mkdir -p "$st/sources.list.d" "$st/lists/partial" "$st/cache/archives/partial" "$dir/dl"
  : > "$st/sources.list"
  apt_deb_src_list "$@" > "$st/sources.list.d/ferry-deb-src.sources"
  if [ ! -s "$st/sources.list.d/ferry-deb-src.sources" ]; then
    apt_log "no Debian entry in /etc/apt/sources.list{,.d}: cannot derive a deb-src source"
    return 3
  fi
  apt_opts=(-o "Dir::Etc::SourceList=$st/sources.list"
            -o "Dir::Etc::SourceParts=$st/sources.list.d"
            -o "Dir::State::Lists=$st/lists"
            -o "Dir::Cache=$st/cache"
            -o "APT::Sandbox::User=$(id -un)")
  # only the source indexes: the machine's binary lists are left as they are
  if ! apt-get "${apt_opts[@]}" -q update >"$st/update.log" 2>&1 \
     || grep -q '^[EW]:' "$st/update.log"; then
    sed 's/^/  /' "$st/update.log" | tail -5 >&2
    grep -q '^Get:\|^Hit:' "$st/update.log" || return 3
  fi
  listed=$(apt-cache "${apt_opts[@]}" showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | sort -rV)
  if [ -z "$listed" ]; then
    apt_log "no source package $pkg in the suites searched (${*:-of this release})"
    return 3
  fi
  for v in $first $listed; do
    case " $tried " in *" $v "*) continue ;; esac
    tried="$tried $v"
    if (cd "$dir/dl" && apt-get "${apt_opts[@]}" -q source --download-only "$pkg=$v") >>"$dir/dl.log" 2>&1; then
      APT_SOURCE_VERSION=$v; break
    fi
    apt_log "$pkg $v: not fetched ($(grep -o -m1 '[0-9]\{3\}  *[A-Z][A-Za-z ]*[a-z]' "$dir/dl.log" || echo "see apt-get's output"))"
    rm -f "$dir"/dl/*
  done
  [ -n "$APT_SOURCE_VERSION" ] || { sed 's/^/  /' "$dir/dl.log" | tail -5 >&2; return 3; }
  # dpkg-source verifies each file's size and checksums against the .dsc (whose
  # own checksum apt verified against the signed index) and applies Debian's patches
  dpkg-source -x "$dir"/dl/"${pkg}"_*.dsc "$dir/src" >"$dir/unpack.log" 2>&1 \
    || { sed 's/^/  /' "$dir/unpack.log" | tail -5 >&2; return 1; }
}

# apt_cache_lock ROOT: create ROOT and hold ROOT/.lock (fd 9) until the
# calling shell exits. Waits for another holder.
apt_cache_lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

# apt_cache_newest ROOT GLOB: the newest complete tree ROOT/GLOB (by
# version sort), or nothing. Temporary trees (.build.*) never match.
apt_cache_newest() {
  [ -d "$1" ] || return 0
  find "$1" -mindepth 1 -maxdepth 1 -type d -name "$2" -print | sort -V | tail -1
}
