/*
 * pgoutput_dump.c: a test driver for src/pgoutput.c. Reads pgoutput
 * messages as hex, one per line, from stdin (what
 * `SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes(...)`
 * prints; a leading "\x" is accepted) and prints one readable line per
 * message:
 *
 *   BEGIN xid=x1
 *   RELATION public.t ident=d (id:int4:key, v:text)
 *   INSERT public.t (t'1', n, u, b'00ff')       n null, u unchanged TOAST
 *   UPDATE public.t old=K(t'2', n) new=(t'3', t'x')
 *   STREAM START xid=x1 first ... INSERT public.t (...) xid=x1 ... STREAM STOP
 *
 * Relation and type names come from the Relation and Type messages seen
 * earlier in the input (so pgo_relation_copy is exercised too). Options:
 *   -p N    protocol version of the decoder (default 1)
 *   -s      stable output: no LSNs, times or OIDs; xids numbered x1, x2, ...
 *           in order of appearance, so the output can be compared as text
 *   -w DIR  also write each message, binary, to DIR/NNNN.bin (seed corpus)
 * Exit status 0 when every line decoded, 1 at the first error (printed as
 * "ERROR line N: reason"), 2 on usage errors.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE -Isrc tests/unit/pgoutput_dump.c
 *        src/pgoutput.c src/mem.c -o build/asan/pgoutput_dump
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mem.h"
#include "pgoutput.h"

typedef struct DumpState
{
	bool		stable;
	PgoRelation **rels;			/* owned copies, by relid (latest wins) */
	int			nrels;
	uint32_t   *typoids;		/* Type messages: oid -> "nsp.name" */
	char	  **typnames;
	int			ntypes;
	uint32_t   *xids;			/* -s: xids in order of appearance */
	int			nxids;
} DumpState;

/* Builtin type names, enough for the tests; others print as their OID. */
static const char *
builtin_type(uint32_t oid)
{
	switch (oid)
	{
		case 16: return "bool";
		case 17: return "bytea";
		case 20: return "int8";
		case 21: return "int2";
		case 23: return "int4";
		case 25: return "text";
		case 1043: return "varchar";
		case 1700: return "numeric";
		case 1114: return "timestamp";
		case 1184: return "timestamptz";
		case 2950: return "uuid";
		case 3802: return "jsonb";
		default: return NULL;
	}
}

static void
add_type(DumpState *s, uint32_t oid, const char *nsp, const char *name)
{
	for (int i = 0; i < s->ntypes; i++)
		if (s->typoids[i] == oid)
		{
			free(s->typnames[i]);
			s->typnames[i] = xasprintf("%s.%s", nsp, name);
			return;
		}
	s->typoids = xrealloc(s->typoids, sizeof(uint32_t) * (size_t) (s->ntypes + 1));
	s->typnames = xrealloc(s->typnames, sizeof(char *) * (size_t) (s->ntypes + 1));
	s->typoids[s->ntypes] = oid;
	s->typnames[s->ntypes++] = xasprintf("%s.%s", nsp, name);
}

static void
type_name(DumpState *s, uint32_t oid, StrBuf *out)
{
	const char *b = builtin_type(oid);

	if (b)
	{
		strbuf_addstr(out, b);
		return;
	}
	for (int i = 0; i < s->ntypes; i++)
		if (s->typoids[i] == oid)
		{
			strbuf_addstr(out, s->typnames[i]);
			return;
		}
	if (s->stable)
		strbuf_addstr(out, "?");
	else
		strbuf_addf(out, "%" PRIu32, oid);
}

static void
add_relation(DumpState *s, const PgoRelation *r)
{
	for (int i = 0; i < s->nrels; i++)
		if (s->rels[i]->relid == r->relid)
		{
			pgo_relation_free(s->rels[i]);
			s->rels[i] = pgo_relation_copy(r);
			return;
		}
	s->rels = xrealloc(s->rels, sizeof(PgoRelation *) * (size_t) (s->nrels + 1));
	s->rels[s->nrels++] = pgo_relation_copy(r);
}

static void
relation_name(DumpState *s, uint32_t relid, StrBuf *out)
{
	for (int i = 0; i < s->nrels; i++)
		if (s->rels[i]->relid == relid)
		{
			strbuf_addf(out, "%s.%s", s->rels[i]->nspname, s->rels[i]->relname);
			return;
		}
	strbuf_addf(out, "relation#%" PRIu32, relid);
}

static void
xid_text(DumpState *s, uint32_t xid, StrBuf *out)
{
	if (!s->stable)
	{
		strbuf_addf(out, "%" PRIu32, xid);
		return;
	}
	for (int i = 0; i < s->nxids; i++)
		if (s->xids[i] == xid)
		{
			strbuf_addf(out, "x%d", i + 1);
			return;
		}
	s->xids = xrealloc(s->xids, sizeof(uint32_t) * (size_t) (s->nxids + 1));
	s->xids[s->nxids++] = xid;
	strbuf_addf(out, "x%d", s->nxids);
}

static void
lsn_text(DumpState *s, const char *label, uint64_t lsn, StrBuf *out)
{
	if (!s->stable)
		strbuf_addf(out, " %s=%X/%X", label, (unsigned) (lsn >> 32), (unsigned) lsn);
}

/* Quoted text: ' and \ escaped, bytes outside printable ASCII as \xHH; long values cut. */
static void
quote_text(const char *data, size_t len, StrBuf *out)
{
	size_t		show = len > 64 ? 24 : len;

	strbuf_addch(out, '\'');
	for (size_t i = 0; i < show; i++)
	{
		unsigned char c = (unsigned char) data[i];

		if (c == '\'' || c == '\\')
			strbuf_addf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			strbuf_addf(out, "\\x%02x", c);
		else
			strbuf_addch(out, (char) c);
	}
	strbuf_addch(out, '\'');
	if (show < len)
		strbuf_addf(out, "...(%zu bytes)", len);
}

static void
render_tuple(const PgoTuple *t, StrBuf *out)
{
	strbuf_addch(out, '(');
	for (int i = 0; i < t->ncols; i++)
	{
		const PgoColumn *c = &t->cols[i];

		if (i > 0)
			strbuf_addstr(out, ", ");
		switch (c->kind)
		{
			case 't':
				strbuf_addch(out, 't');
				quote_text(c->data, c->len, out);
				break;
			case 'b':
				strbuf_addstr(out, "b'");
				for (uint32_t k = 0; k < c->len && k < 32; k++)
					strbuf_addf(out, "%02x", (unsigned char) c->data[k]);
				strbuf_addch(out, '\'');
				if (c->len > 32)
					strbuf_addf(out, "...(%" PRIu32 " bytes)", c->len);
				break;
			default:
				strbuf_addch(out, c->kind);
		}
	}
	strbuf_addch(out, ')');
}

static void
render(DumpState *s, const PgoMessage *m, StrBuf *out)
{
	switch (m->kind)
	{
		case 'B':
			strbuf_addstr(out, "BEGIN xid=");
			xid_text(s, m->u.begin.xid, out);
			lsn_text(s, "final_lsn", m->u.begin.final_lsn, out);
			break;
		case 'C':
			strbuf_addstr(out, "COMMIT");
			lsn_text(s, "lsn", m->u.commit.commit_lsn, out);
			lsn_text(s, "end", m->u.commit.end_lsn, out);
			break;
		case 'O':
			strbuf_addf(out, "ORIGIN name=%s", m->u.origin.name);
			lsn_text(s, "lsn", m->u.origin.lsn, out);
			break;
		case 'R':
			add_relation(s, &m->u.relation);
			strbuf_addf(out, "RELATION %s.%s ident=%c (", m->u.relation.nspname, m->u.relation.relname,
						m->u.relation.replident);
			for (int i = 0; i < m->u.relation.ncols; i++)
			{
				const PgoRelColumn *c = &m->u.relation.cols[i];

				strbuf_addf(out, "%s%s:", i ? ", " : "", c->name);
				type_name(s, c->typoid, out);
				if (c->typmod != -1)
					strbuf_addf(out, "(%" PRId32 ")", c->typmod);
				if (c->key)
					strbuf_addstr(out, ":key");
			}
			strbuf_addch(out, ')');
			break;
		case 'Y':
			add_type(s, m->u.type.typoid, m->u.type.nspname, m->u.type.typname);
			strbuf_addf(out, "TYPE %s.%s", m->u.type.nspname, m->u.type.typname);
			break;
		case 'I':
			strbuf_addstr(out, "INSERT ");
			relation_name(s, m->u.insert.relid, out);
			strbuf_addch(out, ' ');
			render_tuple(&m->u.insert.newtup, out);
			break;
		case 'U':
			strbuf_addstr(out, "UPDATE ");
			relation_name(s, m->u.update.relid, out);
			if (m->u.update.oldkind)
			{
				strbuf_addf(out, " old=%c", m->u.update.oldkind);
				render_tuple(&m->u.update.oldtup, out);
			}
			strbuf_addstr(out, " new=");
			render_tuple(&m->u.update.newtup, out);
			break;
		case 'D':
			strbuf_addstr(out, "DELETE ");
			relation_name(s, m->u.delete_.relid, out);
			strbuf_addf(out, " old=%c", m->u.delete_.oldkind);
			render_tuple(&m->u.delete_.oldtup, out);
			break;
		case 'T':
			strbuf_addstr(out, "TRUNCATE ");
			for (int i = 0; i < m->u.truncate.nrelids; i++)
			{
				if (i > 0)
					strbuf_addstr(out, ", ");
				relation_name(s, m->u.truncate.relids[i], out);
			}
			if (m->u.truncate.options & PGO_TRUNCATE_CASCADE)
				strbuf_addstr(out, " cascade");
			if (m->u.truncate.options & PGO_TRUNCATE_RESTART_IDENTITY)
				strbuf_addstr(out, " restart_identity");
			break;
		case 'M':
			strbuf_addf(out, "MESSAGE %s prefix=", m->u.message.transactional ? "transactional" : "non-transactional");
			quote_text(m->u.message.prefix, strlen(m->u.message.prefix), out);
			strbuf_addstr(out, " content=");
			quote_text(m->u.message.content, m->u.message.len, out);
			lsn_text(s, "lsn", m->u.message.lsn, out);
			break;
		case 'S':
			strbuf_addstr(out, "STREAM START xid=");
			xid_text(s, m->u.stream_start.xid, out);
			if (m->u.stream_start.first_segment)
				strbuf_addstr(out, " first");
			break;
		case 'E':
			strbuf_addstr(out, "STREAM STOP");
			break;
		case 'c':
			strbuf_addstr(out, "STREAM COMMIT xid=");
			xid_text(s, m->u.stream_commit.xid, out);
			lsn_text(s, "lsn", m->u.stream_commit.commit_lsn, out);
			lsn_text(s, "end", m->u.stream_commit.end_lsn, out);
			break;
		case 'A':
			strbuf_addstr(out, "STREAM ABORT xid=");
			xid_text(s, m->u.stream_abort.xid, out);
			strbuf_addstr(out, " subxid=");
			xid_text(s, m->u.stream_abort.subxid, out);
			break;
		default:
			strbuf_addf(out, "?%c", m->kind);
	}
	/* the xid prefix of messages inside a stream */
	if (m->xid != 0 && m->kind != 'S' && m->kind != 'E' && m->kind != 'O')
	{
		strbuf_addstr(out, " xid=");
		xid_text(s, m->xid, out);
	}
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex text (whitespace and a leading \x ignored) into *out; false if not hex. */
static bool
unhex(const char *line, StrBuf *out)
{
	const char *p = line;

	strbuf_reset(out);
	while (*p == ' ' || *p == '\t')
		p++;
	if (p[0] == '\\' && p[1] == 'x')
		p += 2;
	while (*p && *p != '\n' && *p != '\r')
	{
		int			hi = hexval((unsigned char) p[0]);
		int			lo = hi < 0 ? -1 : hexval((unsigned char) p[1]);

		if (hi < 0 || lo < 0)
			return false;
		strbuf_addch(out, (char) (hi << 4 | lo));
		p += 2;
	}
	return true;
}

static void
usage(void)
{
	fprintf(stderr, "usage: pgoutput_dump [-p proto_version] [-s] [-w dir] < hex-lines\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	DumpState	s;
	PgoDecoder *d;
	int			proto = 1;
	const char *dir = NULL;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	int			lineno = 0;
	int			written = 0;
	int			status = 0;
	StrBuf		bin;
	StrBuf		out;
	int			opt;

	memset(&s, 0, sizeof(s));
	while ((opt = getopt(argc, argv, "p:sw:")) != -1)
	{
		switch (opt)
		{
			case 'p':
				proto = atoi(optarg);
				break;
			case 's':
				s.stable = true;
				break;
			case 'w':
				dir = optarg;
				break;
			default:
				usage();
		}
	}
	if (optind != argc)
		usage();
	d = pgo_decoder_new(proto);
	if (d == NULL)
	{
		fprintf(stderr, "pgoutput_dump: unsupported protocol version %d\n", proto);
		return 2;
	}
	strbuf_init(&bin);
	strbuf_init(&out);
	while ((n = getline(&line, &cap, stdin)) != -1)
	{
		PgoMessage	m;
		char		err[256];

		lineno++;
		if (n == 0 || line[0] == '\n')
			continue;
		if (!unhex(line, &bin))
		{
			printf("ERROR line %d: not hex\n", lineno);
			status = 1;
			break;
		}
		if (dir)
		{
			char	   *path = xasprintf("%s/%04d.bin", dir, ++written);
			FILE	   *f = fopen(path, "wb");

			if (f == NULL || fwrite(bin.data, 1, bin.len, f) != bin.len || fclose(f) != 0)
			{
				perror(path);
				return 2;
			}
			free(path);
		}
		if (!pgo_decode(d, bin.data, bin.len, &m, err, sizeof(err)))
		{
			printf("ERROR line %d: %s\n", lineno, err);
			status = 1;
			break;
		}
		strbuf_reset(&out);
		render(&s, &m, &out);
		puts(out.data);
	}
	free(line);
	strbuf_release(&bin);
	strbuf_release(&out);
	pgo_decoder_free(d);
	for (int i = 0; i < s.nrels; i++)
		pgo_relation_free(s.rels[i]);
	free(s.rels);
	for (int i = 0; i < s.ntypes; i++)
		free(s.typnames[i]);
	free(s.typnames);
	free(s.typoids);
	free(s.xids);
	return status;
}
