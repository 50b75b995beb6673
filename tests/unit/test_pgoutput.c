/*
 * test_pgoutput.c: unit tests for the replication framing and the pgoutput
 * decoder (src/pgoutput.c), on byte buffers built by hand from the formats
 * in PostgreSQL's "Streaming Replication Protocol" and "Logical Replication
 * Message Formats" pages.
 *
 * Every buffer handed to the decoder is first copied into an allocation of
 * exactly its length, so AddressSanitizer reports any read past the end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "pgoutput.h"
#include "tap.h"

static int
is_u64(uint64_t got, uint64_t want, const char *name)
{
	int			same = got == want;

	if (!ok(same, name))
		printf("#   got:  0x%llx\n#   want: 0x%llx\n", (unsigned long long) got, (unsigned long long) want);
	return same;
}

/* ok() that err contains `want`. */
static int
err_like(const char *err, const char *want, const char *name)
{
	int			found = strstr(err, want) != NULL;

	if (!ok(found, name))
		printf("#   error: '%s'\n#   does not contain: '%s'\n", err, want);
	return found;
}

/* Is (data, len) exactly the NUL-terminated string s? */
static int
same_bytes(const char *data, size_t len, const char *s)
{
	return len == strlen(s) && (len == 0 || memcmp(data, s, len) == 0);
}

/* ---- building messages ------------------------------------------------ */

static void
put_u8(StrBuf *b, unsigned v)
{
	char		c = (char) (unsigned char) v;

	strbuf_add(b, &c, 1);
}

static void
put_u16(StrBuf *b, unsigned v)
{
	put_u8(b, (v >> 8) & 0xff);
	put_u8(b, v & 0xff);
}

static void
put_u32(StrBuf *b, uint32_t v)
{
	for (int s = 24; s >= 0; s -= 8)
		put_u8(b, (v >> s) & 0xff);
}

static void
put_u64(StrBuf *b, uint64_t v)
{
	put_u32(b, (uint32_t) (v >> 32));
	put_u32(b, (uint32_t) v);
}

/* a String: the bytes and the NUL */
static void
put_str(StrBuf *b, const char *s)
{
	strbuf_add(b, s, strlen(s) + 1);
}

/* a TupleData column with a value: kind, Int32 length, bytes */
static void
put_col(StrBuf *b, char kind, const char *data, uint32_t len)
{
	put_u8(b, (unsigned char) kind);
	put_u32(b, len);
	strbuf_add(b, data, len);
}

static StrBuf
msg(char kind)
{
	StrBuf		b;

	strbuf_init(&b);
	put_u8(&b, (unsigned char) kind);
	return b;
}

/*
 * Decode b[0..len) from a copy of exactly that size. The copy is kept in
 * *keep (freed by the caller after use of the message: strings borrow it).
 */
static bool
decode_exact(PgoDecoder *d, const char *data, size_t len, PgoMessage *m, char *err, size_t errsize, char **keep)
{
	char	   *copy = xmalloc(len);
	bool		r;

	memcpy(copy, data, len);
	err[0] = '\0';
	r = pgo_decode(d, len ? copy : NULL, len, m, err, errsize);
	if (keep)
		*keep = copy;
	else
		free(copy);
	return r;
}

static bool
frame_exact(const char *data, size_t len, ReplFrame *f, char *err, size_t errsize, char **keep)
{
	char	   *copy = xmalloc(len);
	bool		r;

	memcpy(copy, data, len);
	err[0] = '\0';
	r = repl_parse_frame(len ? copy : NULL, len, f, err, errsize);
	if (keep)
		*keep = copy;
	else
		free(copy);
	return r;
}

/* ---- a catalogue of valid messages ------------------------------------ */

#define XID 1234u
#define SUBXID 1240u

typedef struct Sample
{
	const char *name;
	int			proto;
	bool		in_stream;		/* decode after a Stream Start of XID */
	size_t		valid_prefix;	/* a prefix of this length is a message too (0: none) */
	StrBuf		b;
} Sample;

static Sample samples[64];
static int	nsamples;

static StrBuf *
sample(const char *name, int proto, bool in_stream, char kind)
{
	Sample	   *s = &samples[nsamples++];

	s->name = name;
	s->proto = proto;
	s->in_stream = in_stream;
	s->b = msg(kind);
	return &s->b;
}

/* a tuple: (1, NULL, unchanged, "hello", binary 00 01 ff) */
static void
put_tuple5(StrBuf *b)
{
	put_u16(b, 5);
	put_col(b, 't', "1", 1);
	put_u8(b, 'n');
	put_u8(b, 'u');
	put_col(b, 't', "hello", 5);
	put_col(b, 'b', "\x00\x01\xff", 3);
}

static void
build_samples(void)
{
	StrBuf	   *b;

	b = sample("Begin", 1, false, 'B');
	put_u64(b, 0x0000000100000028ULL);
	put_u64(b, 700000000000000LL);
	put_u32(b, XID);

	b = sample("Commit", 1, false, 'C');
	put_u8(b, 0);
	put_u64(b, 0x16B3748);
	put_u64(b, 0x16B3780);
	put_u64(b, 700000000000001LL);

	b = sample("Origin", 1, false, 'O');
	put_u64(b, 0xABCDEF);
	put_str(b, "origin_a");

	b = sample("Relation", 1, false, 'R');
	put_u32(b, 16384);
	put_str(b, "public");
	put_str(b, "accounts");
	put_u8(b, 'd');
	put_u16(b, 3);
	put_u8(b, 1);
	put_str(b, "id");
	put_u32(b, 23);
	put_u32(b, 0xffffffffu);	/* typmod -1 */
	put_u8(b, 0);
	put_str(b, "name");
	put_u32(b, 1043);
	put_u32(b, 68);				/* varchar(64) */
	put_u8(b, 0);
	put_str(b, "");				/* an empty name still has its NUL */
	put_u32(b, 25);
	put_u32(b, 0xffffffffu);

	b = sample("Type", 1, false, 'Y');
	put_u32(b, 16390);
	put_str(b, "public");
	put_str(b, "mood");

	b = sample("Insert", 1, false, 'I');
	put_u32(b, 16384);
	put_u8(b, 'N');
	put_tuple5(b);

	b = sample("Update (no old tuple)", 1, false, 'U');
	put_u32(b, 16384);
	put_u8(b, 'N');
	put_tuple5(b);

	b = sample("Update (old key)", 1, false, 'U');
	put_u32(b, 16384);
	put_u8(b, 'K');
	put_u16(b, 1);
	put_col(b, 't', "7", 1);
	put_u8(b, 'N');
	put_tuple5(b);

	b = sample("Update (old row)", 1, false, 'U');
	put_u32(b, 16384);
	put_u8(b, 'O');
	put_u16(b, 2);
	put_col(b, 't', "7", 1);
	put_col(b, 't', "old", 3);
	put_u8(b, 'N');
	put_u16(b, 2);
	put_col(b, 't', "7", 1);
	put_u8(b, 'u');

	b = sample("Delete (key)", 1, false, 'D');
	put_u32(b, 16384);
	put_u8(b, 'K');
	put_u16(b, 1);
	put_col(b, 't', "7", 1);

	b = sample("Delete (old row)", 1, false, 'D');
	put_u32(b, 16384);
	put_u8(b, 'O');
	put_u16(b, 2);
	put_col(b, 't', "7", 1);
	put_u8(b, 'n');

	b = sample("Truncate", 1, false, 'T');
	put_u32(b, 2);
	put_u8(b, 3);
	put_u32(b, 16384);
	put_u32(b, 16390);

	b = sample("Message (transactional)", 1, false, 'M');
	put_u8(b, 1);
	put_u64(b, 0x1000);
	put_str(b, "ferry");
	put_u32(b, 5);
	strbuf_add(b, "a\0b\nc", 5);

	b = sample("Message (empty content)", 1, false, 'M');
	put_u8(b, 0);
	put_u64(b, 0x2000);
	put_str(b, "");
	put_u32(b, 0);

	b = sample("Stream Start", 2, false, 'S');
	put_u32(b, XID);
	put_u8(b, 1);

	b = sample("Stream Stop", 2, true, 'E');

	b = sample("Stream Commit", 2, false, 'c');
	put_u32(b, XID);
	put_u8(b, 0);
	put_u64(b, 0x5000);
	put_u64(b, 0x5030);
	put_u64(b, 700000000000002LL);

	b = sample("Stream Abort", 2, false, 'A');
	put_u32(b, XID);
	put_u32(b, SUBXID);

	b = sample("Stream Abort (proto 4, abort info)", 4, false, 'A');
	samples[nsamples - 1].valid_prefix = 9;	/* the abort info is optional */
	put_u32(b, XID);
	put_u32(b, XID);
	put_u64(b, 0x6000);
	put_u64(b, 700000000000003LL);

	b = sample("streamed Relation", 2, true, 'R');
	put_u32(b, SUBXID);
	put_u32(b, 16384);
	put_str(b, "");				/* pg_catalog */
	put_str(b, "pg_thing");
	put_u8(b, 'f');
	put_u16(b, 1);
	put_u8(b, 1);
	put_str(b, "a");
	put_u32(b, 23);
	put_u32(b, 0xffffffffu);

	b = sample("streamed Type", 2, true, 'Y');
	put_u32(b, XID);
	put_u32(b, 16390);
	put_str(b, "");
	put_str(b, "int4");

	b = sample("streamed Insert", 2, true, 'I');
	put_u32(b, SUBXID);
	put_u32(b, 16384);
	put_u8(b, 'N');
	put_tuple5(b);

	b = sample("streamed Update", 2, true, 'U');
	put_u32(b, XID);
	put_u32(b, 16384);
	put_u8(b, 'K');
	put_u16(b, 1);
	put_col(b, 't', "7", 1);
	put_u8(b, 'N');
	put_u16(b, 1);
	put_col(b, 't', "8", 1);

	b = sample("streamed Delete", 2, true, 'D');
	put_u32(b, XID);
	put_u32(b, 16384);
	put_u8(b, 'K');
	put_u16(b, 1);
	put_col(b, 't', "7", 1);

	b = sample("streamed Truncate", 2, true, 'T');
	put_u32(b, XID);
	put_u32(b, 1);
	put_u8(b, 0);
	put_u32(b, 16384);

	b = sample("streamed Message", 2, true, 'M');
	put_u32(b, XID);
	put_u8(b, 1);
	put_u64(b, 0x3000);
	put_str(b, "p");
	put_u32(b, 2);
	strbuf_add(b, "hi", 2);

	b = sample("Origin inside a stream", 2, true, 'O');
	put_u64(b, 0);
	put_str(b, "o");
}

static const Sample *
find_sample(const char *name)
{
	for (int i = 0; i < nsamples; i++)
		if (strcmp(samples[i].name, name) == 0)
			return &samples[i];
	fprintf(stderr, "no sample %s\n", name);
	abort();
}

/* A decoder in the state the sample needs: protocol, maybe inside a stream of XID. */
static PgoDecoder *
decoder_for(const Sample *s)
{
	PgoDecoder *d = pgo_decoder_new(s->proto);

	if (s->in_stream)
	{
		const Sample *start = find_sample("Stream Start");
		PgoMessage	m;
		char		err[256];

		if (!decode_exact(d, start->b.data, start->b.len, &m, err, sizeof(err), NULL))
		{
			fprintf(stderr, "cannot start a stream: %s\n", err);
			abort();
		}
	}
	return d;
}

/* Decode a sample into *m with a decoder in the right state; the caller frees *d and *keep. */
static bool
decode_sample(const char *name, PgoDecoder **d, PgoMessage *m, char **keep)
{
	const Sample *s = find_sample(name);
	char		err[256];
	bool		r;

	*d = decoder_for(s);
	r = decode_exact(*d, s->b.data, s->b.len, m, err, sizeof(err), keep);
	if (!r)
		printf("# %s: %s\n", name, err);
	return r;
}

static void
release(PgoDecoder *d, char *keep)
{
	pgo_decoder_free(d);
	free(keep);
}

/* ---- framing ---------------------------------------------------------- */

static void
test_frames(void)
{
	StrBuf		b;
	ReplFrame	f;
	char		err[256];
	char	   *keep;

	/* keepalive: 'k', wal_end, send_time, reply */
	b = msg('k');
	put_u64(&b, 0x0000000316B3748ULL);
	put_u64(&b, 0xFFFFFFFFFFFFFFFFULL);	/* -1: a negative time decodes as such */
	put_u8(&b, 1);
	ok(frame_exact(b.data, b.len, &f, err, sizeof(err), NULL), "keepalive parses");
	is_int(f.kind, REPL_KEEPALIVE, "keepalive kind");
	is_u64(f.wal_end, 0x0000000316B3748ULL, "keepalive wal_end");
	is_int(f.send_time, -1, "keepalive send_time (signed)");
	ok(f.reply_requested, "keepalive reply requested");
	b.data[17] = 0;
	ok(frame_exact(b.data, b.len, &f, err, sizeof(err), NULL) && !f.reply_requested, "keepalive without reply request");
	{
		bool		all = true;

		for (size_t n = 0; n < b.len; n++)
			if (frame_exact(b.data, n, &f, err, sizeof(err), NULL) || err[0] == '\0')
				all = false;
		ok(all, "every prefix of a keepalive fails with a reason");
	}
	put_u8(&b, 0);
	ok(!frame_exact(b.data, b.len, &f, err, sizeof(err), NULL), "keepalive of 19 bytes fails");
	err_like(err, "unexpected byte", "... saying so");
	strbuf_release(&b);

	/* XLogData: 'w', start, end, time, payload */
	b = msg('w');
	put_u64(&b, 0x100);
	put_u64(&b, 0x200);
	put_u64(&b, 12345);
	strbuf_add(&b, "B\x00\x01", 3);
	ok(frame_exact(b.data, b.len, &f, err, sizeof(err), &keep), "XLogData parses");
	is_int(f.kind, REPL_XLOGDATA, "XLogData kind");
	is_u64(f.wal_start, 0x100, "XLogData wal_start");
	is_u64(f.wal_end, 0x200, "XLogData wal_end");
	is_int(f.send_time, 12345, "XLogData send_time");
	ok(f.data == keep + REPL_XLOGDATA_HEADER && f.len == 3, "XLogData payload points after the 25-byte header");
	free(keep);
	ok(frame_exact(b.data, REPL_XLOGDATA_HEADER, &f, err, sizeof(err), NULL) && f.len == 0,
	   "XLogData with an empty payload parses");
	ok(!frame_exact(b.data, REPL_XLOGDATA_HEADER - 1, &f, err, sizeof(err), NULL), "XLogData of 24 bytes fails");
	err_like(err, "truncated XLogData message: send time", "... naming the field");
	strbuf_release(&b);

	b = msg('x');
	put_u64(&b, 0);
	f.kind = REPL_KEEPALIVE;
	f.wal_end = 42;
	ok(!frame_exact(b.data, b.len, &f, err, sizeof(err), NULL), "unknown frame type fails");
	err_like(err, "'x' (0x78)", "... naming the byte");
	ok(f.wal_end == 42, "... and leaves the output alone");
	ok(!repl_parse_frame(NULL, 0, &f, err, sizeof(err)), "empty frame fails");
	strbuf_release(&b);
	ok(!repl_parse_frame("q", 1, &f, NULL, 0), "a NULL err buffer is fine");
}

static void
test_status(void)
{
	char		out[REPL_STATUS_SIZE + 1];
	const unsigned char *u = (const unsigned char *) out;
	uint64_t	w = 0x0102030405060708ULL,
				fl = 0x1112131415161718ULL,
				ap = 0x2122232425262728ULL;
	int64_t		now = -2;		/* 0xff..fe: checks the signed time is sent as two's complement */
	static const unsigned char want[REPL_STATUS_SIZE] = {
		'r',
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0x01,
	};
	int64_t		t;

	memset(out, 0xAA, sizeof(out));
	is_int((long long) repl_build_status(out, w, fl, ap, now, true), 34, "status update is 34 bytes");
	ok(memcmp(out, want, sizeof(want)) == 0, "status update bytes: 'r', write@1, flush@9, apply@17, time@25, reply@33");
	ok(u[34] == 0xAA, "status update writes nothing past byte 33");
	repl_build_status(out, 0, 0, 0, 0, false);
	is_int(u[0], 'r', "status type byte");
	is_int(u[33], 0, "status reply byte 0 when not asked");

	t = repl_now_us();
	/* 2020-01-01 is 631152000 s after 2000-01-01; 2100 is far */
	ok(t > INT64_C(631152000) * 1000000 && t < INT64_C(3155760000) * 1000000,
	   "repl_now_us counts microseconds from 2000-01-01");
}

/* ---- every message kind ----------------------------------------------- */

static void
test_begin_commit_origin(void)
{
	PgoDecoder *d;
	PgoMessage	m;
	char	   *keep;

	ok(decode_sample("Begin", &d, &m, &keep), "Begin decodes");
	is_int(m.kind, 'B', "Begin kind");
	is_u64(m.u.begin.final_lsn, 0x0000000100000028ULL, "Begin final_lsn");
	is_int(m.u.begin.commit_time, 700000000000000LL, "Begin commit_time");
	is_int(m.u.begin.xid, XID, "Begin xid");
	is_int(m.xid, 0, "Begin message xid 0 outside a stream");
	release(d, keep);

	ok(decode_sample("Commit", &d, &m, &keep), "Commit decodes");
	is_int(m.kind, 'C', "Commit kind");
	is_int(m.u.commit.flags, 0, "Commit flags");
	is_u64(m.u.commit.commit_lsn, 0x16B3748, "Commit commit_lsn");
	is_u64(m.u.commit.end_lsn, 0x16B3780, "Commit end_lsn");
	is_int(m.u.commit.commit_time, 700000000000001LL, "Commit commit_time");
	release(d, keep);

	ok(decode_sample("Origin", &d, &m, &keep), "Origin decodes");
	is_u64(m.u.origin.lsn, 0xABCDEF, "Origin lsn");
	is_str(m.u.origin.name, "origin_a", "Origin name");
	ok(m.u.origin.name == keep + 9, "Origin name borrows from the buffer");
	release(d, keep);
}

static void
test_relation_type(void)
{
	PgoDecoder *d;
	PgoMessage	m;
	char	   *keep;
	PgoRelation *copy;
	char		err[256];

	ok(decode_sample("Relation", &d, &m, &keep), "Relation decodes");
	is_int(m.u.relation.relid, 16384, "Relation relid");
	is_str(m.u.relation.nspname, "public", "Relation nspname");
	is_str(m.u.relation.relname, "accounts", "Relation relname");
	is_int(m.u.relation.replident, 'd', "Relation replident");
	is_int(m.u.relation.ncols, 3, "Relation ncols");
	ok(m.u.relation.cols[0].key && !m.u.relation.cols[1].key && !m.u.relation.cols[2].key, "Relation key flags");
	is_str(m.u.relation.cols[0].name, "id", "Relation column 1 name");
	is_int(m.u.relation.cols[0].typoid, 23, "Relation column 1 type");
	is_int(m.u.relation.cols[0].typmod, -1, "Relation column 1 typmod -1");
	is_int(m.u.relation.cols[1].typmod, 68, "Relation column 2 typmod");
	is_str(m.u.relation.cols[2].name, "", "Relation column 3 empty name");
	ok((uintptr_t) m.u.relation.relname < (uintptr_t) keep ||
	   (uintptr_t) m.u.relation.relname >= (uintptr_t) keep + find_sample("Relation")->b.len,
	   "Relation strings are the decoder's own");

	copy = pgo_relation_copy(&m.u.relation);
	/* a later decode (even a failing one) ends the decoder's relation, not the copy */
	free(keep);
	ok(!decode_exact(d, "Z", 1, &m, err, sizeof(err), NULL), "a bad message after a Relation");
	is_str(copy->relname, "accounts", "the copy outlives the decoder's relation and the buffer");
	is_str(copy->cols[1].name, "name", "the copy has its own column names");
	is_int(copy->cols[1].typoid, 1043, "the copy has the column types");
	pgo_relation_free(copy);
	pgo_relation_free(NULL);
	pgo_decoder_free(d);

	ok(decode_sample("Type", &d, &m, &keep), "Type decodes");
	is_int(m.u.type.typoid, 16390, "Type typoid");
	is_str(m.u.type.nspname, "public", "Type nspname");
	is_str(m.u.type.typname, "mood", "Type typname");
	release(d, keep);

	ok(decode_sample("streamed Relation", &d, &m, &keep), "streamed Relation decodes");
	is_str(m.u.relation.nspname, "pg_catalog", "empty namespace means pg_catalog");
	is_int(m.u.relation.replident, 'f', "Relation replident full");
	is_int(m.xid, SUBXID, "streamed Relation carries the subtransaction xid");
	release(d, keep);

	ok(decode_sample("streamed Type", &d, &m, &keep), "streamed Type decodes");
	is_str(m.u.type.nspname, "pg_catalog", "Type: empty namespace means pg_catalog");
	is_int(m.xid, XID, "streamed Type xid");
	release(d, keep);
}

/* Check the 5-column tuple of put_tuple5. */
static void
check_tuple5(const PgoTuple *t, const char *what)
{
	char		name[200];

	snprintf(name, sizeof(name), "%s: 5 columns", what);
	is_int(t->ncols, 5, name);
	if (t->ncols != 5)
		return;
	snprintf(name, sizeof(name), "%s: text column", what);
	ok(t->cols[0].kind == 't' && same_bytes(t->cols[0].data, t->cols[0].len, "1"), name);
	snprintf(name, sizeof(name), "%s: null column", what);
	ok(t->cols[1].kind == 'n' && t->cols[1].data == NULL && t->cols[1].len == 0, name);
	snprintf(name, sizeof(name), "%s: unchanged TOAST column", what);
	ok(t->cols[2].kind == 'u' && t->cols[2].data == NULL && t->cols[2].len == 0, name);
	snprintf(name, sizeof(name), "%s: second text column", what);
	ok(t->cols[3].kind == 't' && same_bytes(t->cols[3].data, t->cols[3].len, "hello"), name);
	snprintf(name, sizeof(name), "%s: binary column with NUL and 0xff", what);
	ok(t->cols[4].kind == 'b' && t->cols[4].len == 3 && memcmp(t->cols[4].data, "\x00\x01\xff", 3) == 0, name);
}

static void
test_dml(void)
{
	PgoDecoder *d;
	PgoMessage	m;
	char	   *keep;

	ok(decode_sample("Insert", &d, &m, &keep), "Insert decodes");
	is_int(m.u.insert.relid, 16384, "Insert relid");
	check_tuple5(&m.u.insert.newtup, "Insert");
	release(d, keep);

	ok(decode_sample("Update (no old tuple)", &d, &m, &keep), "Update without old tuple decodes");
	is_int(m.u.update.oldkind, 0, "Update oldkind 0");
	is_int(m.u.update.oldtup.ncols, 0, "Update no old columns");
	check_tuple5(&m.u.update.newtup, "Update");
	release(d, keep);

	ok(decode_sample("Update (old key)", &d, &m, &keep), "Update with old key decodes");
	is_int(m.u.update.oldkind, 'K', "Update oldkind K");
	ok(m.u.update.oldtup.ncols == 1 && same_bytes(m.u.update.oldtup.cols[0].data, m.u.update.oldtup.cols[0].len, "7"),
	   "Update old key value");
	check_tuple5(&m.u.update.newtup, "Update new after key");
	ok(m.u.update.oldtup.cols != m.u.update.newtup.cols, "old and new tuples do not share scratch");
	release(d, keep);

	ok(decode_sample("Update (old row)", &d, &m, &keep), "Update with old row decodes");
	is_int(m.u.update.oldkind, 'O', "Update oldkind O");
	ok(m.u.update.oldtup.ncols == 2 && same_bytes(m.u.update.oldtup.cols[1].data, m.u.update.oldtup.cols[1].len, "old"),
	   "Update old row values");
	ok(m.u.update.newtup.ncols == 2 && m.u.update.newtup.cols[1].kind == 'u', "Update new row with unchanged TOAST");
	release(d, keep);

	ok(decode_sample("Delete (key)", &d, &m, &keep), "Delete by key decodes");
	is_int(m.u.delete_.oldkind, 'K', "Delete oldkind K");
	ok(m.u.delete_.oldtup.ncols == 1 && m.u.delete_.oldtup.cols[0].kind == 't', "Delete key column");
	release(d, keep);

	ok(decode_sample("Delete (old row)", &d, &m, &keep), "Delete with old row decodes");
	is_int(m.u.delete_.oldkind, 'O', "Delete oldkind O");
	ok(m.u.delete_.oldtup.ncols == 2 && m.u.delete_.oldtup.cols[1].kind == 'n', "Delete old row null column");
	release(d, keep);

	ok(decode_sample("Truncate", &d, &m, &keep), "Truncate decodes");
	is_int(m.u.truncate.options, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY, "Truncate options CASCADE|RESTART IDENTITY");
	is_int(m.u.truncate.nrelids, 2, "Truncate nrelids");
	ok(m.u.truncate.relids[0] == 16384 && m.u.truncate.relids[1] == 16390, "Truncate relids");
	release(d, keep);

	ok(decode_sample("Message (transactional)", &d, &m, &keep), "Message decodes");
	ok(m.u.message.transactional, "Message transactional");
	is_u64(m.u.message.lsn, 0x1000, "Message lsn");
	is_str(m.u.message.prefix, "ferry", "Message prefix");
	ok(m.u.message.len == 5 && memcmp(m.u.message.content, "a\0b\nc", 5) == 0, "Message content with NUL and newline");
	release(d, keep);

	ok(decode_sample("Message (empty content)", &d, &m, &keep), "non-transactional empty Message decodes");
	ok(!m.u.message.transactional && m.u.message.len == 0, "Message: not transactional, no content");
	is_str(m.u.message.prefix, "", "Message: empty prefix");
	release(d, keep);
}

/* ---- streaming -------------------------------------------------------- */

static void
test_stream(void)
{
	PgoDecoder *d = pgo_decoder_new(2);
	PgoDecoder *d1 = pgo_decoder_new(1);
	PgoMessage	m;
	char		err[256];
	const Sample *start = find_sample("Stream Start");
	const Sample *stop = find_sample("Stream Stop");
	const Sample *ins = find_sample("Insert");
	const Sample *sins = find_sample("streamed Insert");
	const Sample *begin = find_sample("Begin");
	const Sample *scommit = find_sample("Stream Commit");
	const Sample *sabort = find_sample("Stream Abort");
	const Sample *origin = find_sample("Origin inside a stream");
	StrBuf		b;
	char	   *keep;

	ok(pgo_decoder_new(0) == NULL && pgo_decoder_new(5) == NULL, "protocol versions outside 1..4 are refused");

	ok(!decode_exact(d1, start->b.data, start->b.len, &m, err, sizeof(err), NULL), "protocol 1 refuses Stream Start");
	err_like(err, "protocol version 2", "... saying streaming needs protocol 2");
	ok(!decode_exact(d1, scommit->b.data, scommit->b.len, &m, err, sizeof(err), NULL), "protocol 1 refuses Stream Commit");

	ok(decode_exact(d, ins->b.data, ins->b.len, &m, err, sizeof(err), NULL) && m.xid == 0,
	   "protocol 2 outside a stream: Insert has no xid");
	ok(!decode_exact(d, stop->b.data, stop->b.len, &m, err, sizeof(err), NULL), "Stream Stop outside a stream fails");
	err_like(err, "outside a stream", "... saying why");

	/* a truncated Stream Start must not enter the stream */
	ok(!decode_exact(d, start->b.data, start->b.len - 1, &m, err, sizeof(err), NULL), "truncated Stream Start fails");
	ok(!pgo_in_stream(d), "... and the decoder is still outside a stream");

	ok(decode_exact(d, start->b.data, start->b.len, &m, err, sizeof(err), NULL), "Stream Start decodes");
	ok(m.kind == 'S' && m.u.stream_start.xid == XID && m.u.stream_start.first_segment && m.xid == XID,
	   "Stream Start xid and first segment");
	ok(pgo_in_stream(d), "decoder is inside the stream");
	ok(!decode_exact(d, start->b.data, start->b.len, &m, err, sizeof(err), NULL), "a second Stream Start fails");
	err_like(err, "1234 is already streaming", "... naming the streaming xid");
	ok(!decode_exact(d, begin->b.data, begin->b.len, &m, err, sizeof(err), NULL), "Begin inside a stream fails");
	ok(!decode_exact(d, scommit->b.data, scommit->b.len, &m, err, sizeof(err), NULL), "Stream Commit inside a stream fails");
	err_like(err, "inside the stream of transaction 1234", "... saying why");
	ok(!decode_exact(d, sabort->b.data, sabort->b.len, &m, err, sizeof(err), NULL), "Stream Abort inside a stream fails");

	ok(decode_exact(d, sins->b.data, sins->b.len, &m, err, sizeof(err), &keep), "streamed Insert decodes");
	is_int(m.xid, SUBXID, "streamed Insert xid");
	is_int(m.u.insert.relid, 16384, "streamed Insert relid after the xid");
	check_tuple5(&m.u.insert.newtup, "streamed Insert");
	free(keep);
	ok(!decode_exact(d, ins->b.data, ins->b.len, &m, err, sizeof(err), NULL),
	   "an Insert without the xid prefix inside a stream fails");
	ok(decode_exact(d, origin->b.data, origin->b.len, &m, err, sizeof(err), NULL) && m.xid == XID,
	   "Origin inside a stream has no prefix and reports the stream xid");

	/* xid 0 in the prefix */
	b = msg('I');
	put_u32(&b, 0);
	put_u32(&b, 16384);
	put_u8(&b, 'N');
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "streamed Insert with xid 0 fails");
	err_like(err, "xid 0", "... saying so");
	strbuf_release(&b);

	ok(decode_exact(d, stop->b.data, stop->b.len, &m, err, sizeof(err), NULL) && m.kind == 'E' && m.xid == XID,
	   "Stream Stop decodes and names the stream xid");
	ok(!pgo_in_stream(d), "decoder left the stream");

	ok(decode_exact(d, scommit->b.data, scommit->b.len, &m, err, sizeof(err), NULL), "Stream Commit decodes");
	ok(m.u.stream_commit.xid == XID && m.u.stream_commit.commit_lsn == 0x5000 && m.u.stream_commit.end_lsn == 0x5030 &&
	   m.u.stream_commit.commit_time == 700000000000002LL && m.xid == 0, "Stream Commit fields");
	ok(decode_exact(d, sabort->b.data, sabort->b.len, &m, err, sizeof(err), NULL), "Stream Abort decodes");
	ok(m.u.stream_abort.xid == XID && m.u.stream_abort.subxid == SUBXID && !m.u.stream_abort.has_abort_info,
	   "Stream Abort xid, subxid");

	/* Stream Start of a later segment */
	b = msg('S');
	put_u32(&b, 99);
	put_u8(&b, 0);
	ok(decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL) && !m.u.stream_start.first_segment,
	   "Stream Start of a later segment");
	ok(decode_exact(d, stop->b.data, stop->b.len, &m, err, sizeof(err), NULL), "... and its Stop");
	b.data[5] = 2;
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Stream Start first-segment flag 2 fails");
	b.data[5] = 0;
	memset(b.data + 1, 0, 4);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Stream Start with xid 0 fails");
	strbuf_release(&b);

	/* proto 2 treats extra abort info as trailing garbage; proto 4 decodes it */
	{
		const Sample *a4 = find_sample("Stream Abort (proto 4, abort info)");
		PgoDecoder *d4 = pgo_decoder_new(4);

		ok(!decode_exact(d, a4->b.data, a4->b.len, &m, err, sizeof(err), NULL), "protocol 2: Stream Abort with 16 extra bytes fails");
		ok(decode_exact(d4, a4->b.data, a4->b.len, &m, err, sizeof(err), NULL), "protocol 4: Stream Abort with abort info decodes");
		ok(m.u.stream_abort.has_abort_info && m.u.stream_abort.abort_lsn == 0x6000 &&
		   m.u.stream_abort.abort_time == 700000000000003LL, "... abort LSN and time");
		ok(decode_exact(d4, sabort->b.data, sabort->b.len, &m, err, sizeof(err), NULL) && !m.u.stream_abort.has_abort_info,
		   "protocol 4: Stream Abort without abort info decodes");
		ok(!decode_exact(d4, a4->b.data, a4->b.len - 8, &m, err, sizeof(err), NULL), "protocol 4: half the abort info fails");
		pgo_decoder_free(d4);
	}

	pgo_decoder_free(d);
	pgo_decoder_free(d1);
}

/* ---- malformed input -------------------------------------------------- */

/*
 * Every strict prefix of every valid message must fail with a reason (bar
 * one that is itself a valid message: a proto 4 Stream Abort without its
 * optional abort info), from
 * an exact-size buffer (ASan catches a read past the end), and must leave
 * the stream state alone. One TAP line per sample.
 */
static void
test_prefixes(void)
{
	char		err[256];
	char		name[200];

	for (int i = 0; i < nsamples; i++)
	{
		const Sample *s = &samples[i];
		PgoDecoder *d = decoder_for(s);
		bool		all_fail = true;
		bool		state_kept = true;
		bool		whole = false;
		PgoMessage	m;

		for (size_t n = 0; n < s->b.len; n++)
		{
			if (n == s->valid_prefix && n > 0)
				continue;
			if (decode_exact(d, s->b.data, n, &m, err, sizeof(err), NULL) || err[0] == '\0')
			{
				all_fail = false;
				printf("# %s: prefix of %zu bytes did not fail cleanly\n", s->name, n);
			}
			if (pgo_in_stream(d) != s->in_stream)
				state_kept = false;
		}
		whole = decode_exact(d, s->b.data, s->b.len, &m, err, sizeof(err), NULL);
		if (!whole)
			printf("# %s: %s\n", s->name, err);
		snprintf(name, sizeof(name), "%s (%zu bytes): every prefix fails, state kept, whole decodes",
				 s->name, s->b.len);
		ok(all_fail && state_kept && whole, name);
		pgo_decoder_free(d);
	}
}

/* Every valid message with one byte appended fails (exact consumption). */
static void
test_trailing(void)
{
	char		err[256];
	bool		all = true;

	for (int i = 0; i < nsamples; i++)
	{
		const Sample *s = &samples[i];
		PgoDecoder *d = decoder_for(s);
		StrBuf		b;
		PgoMessage	m;

		strbuf_init(&b);
		strbuf_add(&b, s->b.data, s->b.len);
		put_u8(&b, 0);
		if (decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL) || strstr(err, "unexpected byte") == NULL)
		{
			all = false;
			printf("# %s with a trailing byte: %s\n", s->name, err);
		}
		strbuf_release(&b);
		pgo_decoder_free(d);
	}
	ok(all, "every message with a trailing byte fails with 'unexpected byte'");
}

static void
test_bad_counts(void)
{
	PgoDecoder *d = pgo_decoder_new(1);
	PgoMessage	m;
	char		err[256];
	StrBuf		b;

	/* tuple with 65535 columns and 4 bytes of them */
	b = msg('I');
	put_u32(&b, 1);
	put_u8(&b, 'N');
	put_u16(&b, 65535);
	put_u8(&b, 'n');
	put_u8(&b, 'n');
	put_u8(&b, 'n');
	put_u8(&b, 'n');
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "tuple declaring 65535 columns in 4 bytes fails");
	err_like(err, "declares 65535 columns but only 4 bytes", "... before allocating");
	strbuf_release(&b);

	/* relation with 65535 columns */
	b = msg('R');
	put_u32(&b, 1);
	put_str(&b, "s");
	put_str(&b, "t");
	put_u8(&b, 'd');
	put_u16(&b, 65535);
	put_u8(&b, 0);
	put_str(&b, "a");
	put_u32(&b, 23);
	put_u32(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "relation declaring 65535 columns fails");
	err_like(err, "declares 65535 columns but only 11 bytes", "... checked against 10 bytes per column");
	strbuf_release(&b);

	/* truncate with 2^31-1 relations, and with a negative count */
	b = msg('T');
	put_u32(&b, 0x7fffffff);
	put_u8(&b, 0);
	put_u32(&b, 1);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "truncate declaring 2^31-1 relations fails");
	err_like(err, "declares 2147483647 relations but only 4 bytes", "... before allocating");
	memset(b.data + 1, 0xff, 4);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "truncate with relation count -1 fails");
	err_like(err, "negative relation count -1", "... as negative");
	strbuf_release(&b);

	/* column value length 2^31-1 and -1 */
	b = msg('I');
	put_u32(&b, 1);
	put_u8(&b, 'N');
	put_u16(&b, 1);
	put_u8(&b, 't');
	put_u32(&b, 0x7fffffff);
	strbuf_add(&b, "abc", 3);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "column length 2^31-1 with 3 bytes fails");
	err_like(err, "truncated Insert message: new tuple column 1 value needs 2147483647 bytes", "... naming the column");
	memset(b.data + 9, 0xff, 4);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "column length -1 fails");
	err_like(err, "negative", "... as negative");
	strbuf_release(&b);

	/* logical message content length beyond the buffer */
	b = msg('M');
	put_u8(&b, 0);
	put_u64(&b, 1);
	put_str(&b, "p");
	put_u32(&b, 0x10000);
	strbuf_add(&b, "xy", 2);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "message content length beyond the buffer fails");
	err_like(err, "content needs 65536 bytes", "... naming the field");
	strbuf_release(&b);

	pgo_decoder_free(d);
}

static void
test_bad_strings_and_bytes(void)
{
	PgoDecoder *d = pgo_decoder_new(2);
	PgoMessage	m;
	char		err[256];
	StrBuf		b;

	/* Relation whose relname runs to the end without a NUL */
	b = msg('R');
	put_u32(&b, 1);
	put_str(&b, "public");
	strbuf_add(&b, "accounts", 8);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "relation name without NUL fails");
	err_like(err, "relation name at offset 12 has no terminating NUL", "... saying where");
	strbuf_release(&b);

	b = msg('O');
	put_u64(&b, 1);
	strbuf_add(&b, "origin", 6);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "origin name without NUL fails");
	err_like(err, "origin name", "... naming the field");
	strbuf_release(&b);

	b = msg('M');
	put_u8(&b, 1);
	put_u64(&b, 1);
	strbuf_add(&b, "prefix", 6);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "message prefix without NUL fails");
	strbuf_release(&b);

	b = msg('Y');
	put_u32(&b, 1);
	put_str(&b, "public");
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "type without a name fails");
	err_like(err, "type name needs 1 byte", "... naming the field");
	strbuf_release(&b);

	ok(!decode_exact(d, "X", 1, &m, err, sizeof(err), NULL), "unknown message kind fails");
	err_like(err, "unknown pgoutput message type 'X' (0x58)", "... naming the byte");
	ok(!decode_exact(d, "\x01\x02", 2, &m, err, sizeof(err), NULL), "non-printable message kind fails");
	err_like(err, "type 0x01", "... in hex");
	ok(!decode_exact(d, "", 0, &m, err, sizeof(err), NULL), "empty message fails");
	err_like(err, "empty", "... as empty");
	ok(!decode_exact(d, "P", 1, &m, err, sizeof(err), NULL), "Prepare (protocol 3) fails");
	err_like(err, "unsupported pgoutput message 'P' (0x50) (Prepare)", "... as unsupported two-phase");
	ok(!decode_exact(d, "p", 1, &m, err, sizeof(err), NULL), "Stream Prepare fails");
	err_like(err, "Stream Prepare", "... named");

	/* unknown column kind */
	b = msg('I');
	put_u32(&b, 1);
	put_u8(&b, 'N');
	put_u16(&b, 2);
	put_u8(&b, 'n');
	put_u8(&b, 'z');
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "unknown column kind fails");
	err_like(err, "column 2 has unknown kind 'z' (0x7a)", "... naming column and byte");
	strbuf_release(&b);

	/* wrong tuple actions */
	b = msg('I');
	put_u32(&b, 1);
	put_u8(&b, 'K');
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Insert with a K tuple fails");
	err_like(err, "tuple type 'K' (0x4b) at offset 5, expected one of N", "... naming the action");
	strbuf_release(&b);
	b = msg('D');
	put_u32(&b, 1);
	put_u8(&b, 'N');
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Delete with an N tuple fails");
	strbuf_release(&b);
	b = msg('U');
	put_u32(&b, 1);
	put_u8(&b, 'K');
	put_u16(&b, 0);
	put_u8(&b, 'K');
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Update with two old tuples fails");
	strbuf_release(&b);
	b = msg('U');
	put_u32(&b, 1);
	put_u8(&b, 0);
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Update with action byte 0 fails");
	strbuf_release(&b);

	/* flags and enumerations */
	b = msg('C');
	put_u8(&b, 1);
	put_u64(&b, 1);
	put_u64(&b, 2);
	put_u64(&b, 3);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Commit with flags 1 fails");
	err_like(err, "unknown flags 0x01", "... naming them");
	strbuf_release(&b);
	b = msg('B');
	put_u64(&b, 0);
	put_u64(&b, 0);
	put_u32(&b, 5);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Begin with final LSN 0/0 fails");
	strbuf_release(&b);
	b = msg('R');
	put_u32(&b, 1);
	put_str(&b, "s");
	put_str(&b, "t");
	put_u8(&b, 'x');
	put_u16(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Relation with replica identity 'x' fails");
	err_like(err, "replica identity 'x'", "... naming it");
	b.data[b.len - 3] = 'n';
	ok(decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL) && m.u.relation.ncols == 0,
	   "Relation with identity nothing and no columns decodes");
	strbuf_release(&b);
	b = msg('R');
	put_u32(&b, 1);
	put_str(&b, "s");
	put_str(&b, "t");
	put_u8(&b, 'd');
	put_u16(&b, 1);
	put_u8(&b, 2);
	put_str(&b, "a");
	put_u32(&b, 23);
	put_u32(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Relation column flags 2 fail");
	strbuf_release(&b);
	b = msg('T');
	put_u32(&b, 0);
	put_u8(&b, 4);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Truncate option bit 4 fails");
	b.data[5] = 0;
	ok(decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL) && m.u.truncate.nrelids == 0 && m.u.truncate.relids == NULL,
	   "Truncate of no relations decodes");
	strbuf_release(&b);
	b = msg('M');
	put_u8(&b, 2);
	put_u64(&b, 1);
	put_str(&b, "p");
	put_u32(&b, 0);
	ok(!decode_exact(d, b.data, b.len, &m, err, sizeof(err), NULL), "Message flags 2 fail");
	strbuf_release(&b);

	/* a failed decode leaves *out alone */
	memset(&m, 0x5a, sizeof(m));
	ok(!decode_exact(d, "X", 1, &m, err, sizeof(err), NULL) && (unsigned char) m.kind == 0x5a,
	   "a failed decode does not touch the output");
	ok(!pgo_decode(d, "X", 1, &m, NULL, 0), "a NULL err buffer is fine");
	{
		char		tiny[8];

		ok(!pgo_decode(d, "X", 1, &m, tiny, sizeof(tiny)) && strlen(tiny) == 7, "errors are cut to errsize");
	}

	pgo_decoder_free(d);
}

/* The scratch grows and shrinks between messages without leaking or aliasing. */
static void
test_scratch_reuse(void)
{
	PgoDecoder *d = pgo_decoder_new(1);
	PgoMessage	m;
	char		err[256];
	StrBuf		big;
	bool		good = true;

	big = msg('I');
	put_u32(&big, 1);
	put_u8(&big, 'N');
	put_u16(&big, 1600);
	for (int i = 0; i < 1600; i++)
		put_col(&big, 't', "v", 1);
	for (int round = 0; round < 3; round++)
	{
		const Sample *s = find_sample("Update (old key)");

		good &= decode_exact(d, big.data, big.len, &m, err, sizeof(err), NULL) && m.u.insert.newtup.ncols == 1600;
		good &= decode_exact(d, s->b.data, s->b.len, &m, err, sizeof(err), NULL) && m.u.update.newtup.ncols == 5;
		s = find_sample("Relation");
		good &= decode_exact(d, s->b.data, s->b.len, &m, err, sizeof(err), NULL) && m.u.relation.ncols == 3;
		s = find_sample("Truncate");
		good &= decode_exact(d, s->b.data, s->b.len, &m, err, sizeof(err), NULL) && m.u.truncate.nrelids == 2;
	}
	ok(good, "1600-column tuples, relations and truncates alternate on one decoder");
	strbuf_release(&big);
	pgo_decoder_free(d);
	pgo_decoder_free(NULL);
}

static void
test_names(void)
{
	is_str(pgo_kind_name('I'), "Insert", "kind name Insert");
	is_str(pgo_kind_name('c'), "Stream Commit", "kind name Stream Commit");
	is_str(pgo_kind_name('?'), "unknown", "kind name of an unknown byte");
}

int
main(void)
{
	build_samples();
	test_frames();
	test_status();
	test_begin_commit_origin();
	test_relation_type();
	test_dml();
	test_stream();
	test_prefixes();
	test_trailing();
	test_bad_counts();
	test_bad_strings_and_bytes();
	test_scratch_reuse();
	test_names();
	for (int i = 0; i < nsamples; i++)
		strbuf_release(&samples[i].b);
	return done_testing();
}
