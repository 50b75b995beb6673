/*
 * pgoutput.c: the replication CopyData framing and the pgoutput message
 * decoder. The formats, the invariants enforced and who owns what are
 * described in pgoutput.h.
 *
 * Every read goes through a Reader, which knows how many bytes are left and
 * turns a short read into an error naming the message, the field and the
 * offset; nothing else indexes the input. A message is decoded into a local
 * PgoMessage and copied to the caller only when all of it was valid, so
 * callers never see half a message and the stream state never moves on a
 * failure.
 */
#include "pgoutput.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

/* Seconds from the Unix epoch to the PostgreSQL epoch (2000-01-01 UTC). */
#define PG_EPOCH_OFFSET_SECS INT64_C(946684800)

/* Smallest wire size of one Relation column: flags, "" name, typoid, typmod. */
#define REL_COLUMN_MIN_BYTES 10

struct PgoDecoder
{
	int			proto;			/* PGO_PROTO_MIN .. PGO_PROTO_MAX */
	bool		in_stream;		/* between Stream Start and Stream Stop */
	uint32_t	stream_xid;		/* the top-level xid of that Stream Start */
	PgoColumn  *cols[2];		/* tuple scratch: [0] old tuple, [1] new tuple */
	int			colcap[2];
	uint32_t   *relids;			/* Truncate scratch */
	int			relidcap;
	PgoRelation rel;			/* the last Relation message, contents owned */
};

/*
 * The decoder's own invariants (for assert): a known protocol, a stream
 * xid exactly while streaming (xid 0 is never valid), scratch sizes that
 * match their arrays.
 */
static bool decoder_check_state(const PgoDecoder *d) __attribute__((unused));

static bool
decoder_check_state(const PgoDecoder *d)
{
	return d->proto >= PGO_PROTO_MIN && d->proto <= PGO_PROTO_MAX &&
		(d->proto >= PGO_PROTO_STREAM || !d->in_stream) &&
		d->in_stream == (d->stream_xid != 0) &&
		(d->colcap[0] == 0) == (d->cols[0] == NULL) &&
		(d->colcap[1] == 0) == (d->cols[1] == NULL) &&
		(d->relidcap == 0) == (d->relids == NULL);
}

/* ---- errors and the bounded reader ------------------------------------ */

static bool set_error(char *err, size_t errsize, const char *fmt, ...)
			__attribute__((format(printf, 3, 4)));

/* Format a one-line reason into err (when there is room) and return false. */
static bool
set_error(char *err, size_t errsize, const char *fmt, ...)
{
	va_list		ap;

	if (err == NULL || errsize == 0)
		return false;
	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
	return false;
}

/* A byte as shown in messages: 'x' (0x78), or 0x01 when not printable. */
static const char *
byte_repr(unsigned char c, char buf[16])
{
	if (c < 0x80 && isprint(c) && c != '\'')
		snprintf(buf, 16, "'%c' (0x%02x)", c, c);
	else
		snprintf(buf, 16, "0x%02x", c);
	return buf;
}

typedef struct Reader
{
	const unsigned char *p;
	size_t		len;
	size_t		pos;
	const char *what;			/* "Insert message", for errors */
	const char *part;			/* inside a tuple: "new tuple", else NULL */
	int			col;			/* inside a tuple: 1-based column, else 0 */
	char	   *err;
	size_t		errsize;
} Reader;

/*
 * The name of a field for an error message: inside a tuple it is qualified
 * ("new tuple column 3 length"). Only called on the error path, so the
 * success path formats nothing.
 */
static const char *
reader_field(const Reader *r, const char *field, char *buf, size_t size)
{
	if (r->part == NULL)
		return field;
	if (r->col > 0)
		snprintf(buf, size, "%s column %d %s", r->part, r->col, field);
	else
		snprintf(buf, size, "%s %s", r->part, field);
	return buf;
}

static void
reader_init(Reader *r, const char *buf, size_t len, size_t pos, const char *what,
			char *err, size_t errsize)
{
	r->p = (const unsigned char *) buf;
	r->len = len;
	r->pos = pos;
	r->what = what;
	r->part = NULL;
	r->col = 0;
	r->err = err;
	r->errsize = errsize;
}

static size_t
reader_left(const Reader *r)
{
	return r->len - r->pos;
}

/* Are n more bytes there? If not, say which field of what was cut short. */
static bool
reader_need(Reader *r, size_t n, const char *field)
{
	char		buf[96];

	if (reader_left(r) >= n)
		return true;
	return set_error(r->err, r->errsize,
					 "truncated %s: %s needs %zu byte%s at offset %zu, %zu left",
					 r->what, reader_field(r, field, buf, sizeof(buf)), n, n == 1 ? "" : "s",
					 r->pos, reader_left(r));
}

static bool
reader_u8(Reader *r, uint8_t *v, const char *field)
{
	if (!reader_need(r, 1, field))
		return false;
	*v = r->p[r->pos++];
	return true;
}

static bool
reader_u16(Reader *r, uint16_t *v, const char *field)
{
	if (!reader_need(r, 2, field))
		return false;
	*v = (uint16_t) ((uint16_t) r->p[r->pos] << 8 | r->p[r->pos + 1]);
	r->pos += 2;
	return true;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

static uint64_t
get_be64(const unsigned char *p)
{
	return (uint64_t) get_be32(p) << 32 | get_be32(p + 4);
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (unsigned char) (v & 0xff);
		v >>= 8;
	}
}

static bool
reader_u32(Reader *r, uint32_t *v, const char *field)
{
	if (!reader_need(r, 4, field))
		return false;
	*v = get_be32(r->p + r->pos);
	r->pos += 4;
	return true;
}

/* An Int32 length or count: must be >= 0 as a signed value. */
static bool
reader_len32(Reader *r, uint32_t *v, const char *field)
{
	size_t		at = r->pos;
	char		buf[96];

	if (!reader_u32(r, v, field))
		return false;
	if (*v > INT32_MAX)
		return set_error(r->err, r->errsize, "malformed %s: negative %s %" PRId32 " at offset %zu",
						 r->what, reader_field(r, field, buf, sizeof(buf)),
						 -(int32_t) (~*v) - 1, at);
	return true;
}

static bool
reader_u64(Reader *r, uint64_t *v, const char *field)
{
	if (!reader_need(r, 8, field))
		return false;
	*v = get_be64(r->p + r->pos);
	r->pos += 8;
	return true;
}

static bool
reader_i64(Reader *r, int64_t *v, const char *field)
{
	uint64_t	u;

	if (!reader_u64(r, &u, field))
		return false;
	/* two's complement reinterpretation, without implementation-defined casts */
	*v = u <= (uint64_t) INT64_MAX ? (int64_t) u : -(int64_t) (~u) - 1;
	return true;
}

/* A NUL-terminated string; *s borrows from the buffer. */
static bool
reader_string(Reader *r, const char **s, const char *field)
{
	const unsigned char *nul;
	char		buf[96];

	if (!reader_need(r, 1, field))
		return false;
	nul = memchr(r->p + r->pos, '\0', reader_left(r));
	if (nul == NULL)
		return set_error(r->err, r->errsize,
						 "malformed %s: %s at offset %zu has no terminating NUL within the %zu bytes left",
						 r->what, reader_field(r, field, buf, sizeof(buf)), r->pos, reader_left(r));
	*s = (const char *) r->p + r->pos;
	r->pos = (size_t) (nul - r->p) + 1;
	return true;
}

/* n raw bytes; *s borrows from the buffer. */
static bool
reader_bytes(Reader *r, size_t n, const char **s, const char *field)
{
	if (!reader_need(r, n, field))
		return false;
	*s = (const char *) r->p + r->pos;
	r->pos += n;
	return true;
}

/* The message must be consumed exactly. */
static bool
reader_end(Reader *r)
{
	if (reader_left(r) == 0)
		return true;
	return set_error(r->err, r->errsize, "malformed %s: %zu unexpected byte%s after the end at offset %zu",
					 r->what, reader_left(r), reader_left(r) == 1 ? "" : "s", r->pos);
}

/* ---- framing ---------------------------------------------------------- */

bool
repl_parse_frame(const char *buf, size_t len, ReplFrame *out, char *err, size_t errsize)
{
	ReplFrame	f;
	Reader		r;
	uint8_t		reply;
	char		b[16];

	memset(&f, 0, sizeof(f));
	if (buf == NULL || len == 0)
		return set_error(err, errsize, "empty replication message");

	switch (buf[0])
	{
		case 'w':
			reader_init(&r, buf, len, 1, "XLogData message", err, errsize);
			f.kind = REPL_XLOGDATA;
			if (!reader_u64(&r, &f.wal_start, "WAL start") ||
				!reader_u64(&r, &f.wal_end, "WAL end") ||
				!reader_i64(&r, &f.send_time, "send time"))
				return false;
			f.data = buf + r.pos;
			f.len = len - r.pos;
			break;
		case 'k':
			reader_init(&r, buf, len, 1, "keepalive message", err, errsize);
			f.kind = REPL_KEEPALIVE;
			if (!reader_u64(&r, &f.wal_end, "WAL end") ||
				!reader_i64(&r, &f.send_time, "send time") ||
				!reader_u8(&r, &reply, "reply flag") ||
				!reader_end(&r))
				return false;
			f.reply_requested = reply != 0;
			break;
		default:
			return set_error(err, errsize, "unknown replication message type %s (expected 'w' or 'k')",
							 byte_repr((unsigned char) buf[0], b));
	}
	*out = f;
	return true;
}

size_t
repl_build_status(char out[REPL_STATUS_SIZE], uint64_t write_lsn, uint64_t flush_lsn,
				  uint64_t apply_lsn, int64_t now_us, bool reply)
{
	unsigned char *p = (unsigned char *) out;

	p[0] = 'r';
	put_be64(p + 1, write_lsn);
	put_be64(p + 9, flush_lsn);
	put_be64(p + 17, apply_lsn);
	put_be64(p + 25, (uint64_t) now_us);
	p[33] = reply ? 1 : 0;
	return REPL_STATUS_SIZE;
}

int64_t
repl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((int64_t) ts.tv_sec - PG_EPOCH_OFFSET_SECS) * INT64_C(1000000) + ts.tv_nsec / 1000;
}

/* ---- pgoutput: decoder state ------------------------------------------ */

PgoDecoder *
pgo_decoder_new(int proto_version)
{
	PgoDecoder *d;

	if (proto_version < PGO_PROTO_MIN || proto_version > PGO_PROTO_MAX)
		return NULL;
	d = xcalloc(1, sizeof(PgoDecoder));
	d->proto = proto_version;
	return d;
}

/* Free the contents of a relation (not the struct) and zero it. */
static void
relation_release(PgoRelation *r)
{
	for (int i = 0; i < r->ncols; i++)
		free(r->cols[i].name);
	free(r->cols);
	free(r->nspname);
	free(r->relname);
	memset(r, 0, sizeof(*r));
}

void
pgo_decoder_free(PgoDecoder *d)
{
	if (d == NULL)
		return;
	relation_release(&d->rel);
	free(d->cols[0]);
	free(d->cols[1]);
	free(d->relids);
	free(d);
}

bool
pgo_in_stream(const PgoDecoder *d)
{
	return d->in_stream;
}

const char *
pgo_kind_name(char kind)
{
	switch (kind)
	{
		case 'B': return "Begin";
		case 'C': return "Commit";
		case 'O': return "Origin";
		case 'R': return "Relation";
		case 'Y': return "Type";
		case 'I': return "Insert";
		case 'U': return "Update";
		case 'D': return "Delete";
		case 'T': return "Truncate";
		case 'M': return "Message";
		case 'S': return "Stream Start";
		case 'E': return "Stream Stop";
		case 'c': return "Stream Commit";
		case 'A': return "Stream Abort";
		case 'b': return "Begin Prepare";
		case 'P': return "Prepare";
		case 'K': return "Commit Prepared";
		case 'r': return "Rollback Prepared";
		case 'p': return "Stream Prepare";
		default: return "unknown";
	}
}

PgoRelation *
pgo_relation_copy(const PgoRelation *r)
{
	PgoRelation *c = xcalloc(1, sizeof(PgoRelation));

	c->relid = r->relid;
	c->nspname = xstrdup(r->nspname);
	c->relname = xstrdup(r->relname);
	c->replident = r->replident;
	c->ncols = r->ncols;
	c->cols = xcalloc((size_t) (r->ncols > 0 ? r->ncols : 1), sizeof(PgoRelColumn));
	for (int i = 0; i < r->ncols; i++)
	{
		c->cols[i] = r->cols[i];
		c->cols[i].name = xstrdup(r->cols[i].name);
	}
	return c;
}

void
pgo_relation_free(PgoRelation *r)
{
	if (r == NULL)
		return;
	relation_release(r);
	free(r);
}

/* ---- pgoutput: message parts ------------------------------------------ */

/*
 * The Int32 xid that prefixes R, Y, I, U, D, T and M inside a stream; *xid
 * is 0 outside one (nothing is read then).
 */
static bool
read_stream_xid(const PgoDecoder *d, Reader *r, uint32_t *xid)
{
	*xid = 0;
	if (!d->in_stream)
		return true;
	if (!reader_u32(r, xid, "streamed transaction xid"))
		return false;
	if (*xid == 0)
		return set_error(r->err, r->errsize, "malformed %s: invalid streamed transaction xid 0", r->what);
	return true;
}

/*
 * TupleData into t, its columns in scratch slot `slot` of the decoder
 * (0 = old tuple, 1 = new tuple, so an Update's two tuples never share).
 * The column count is checked against the bytes left (each column takes at
 * least its kind byte) before the scratch grows.
 */
static bool
read_tuple(PgoDecoder *d, Reader *r, int slot, PgoTuple *t, const char *which)
{
	uint16_t	ncols;
	char		b[16];

	r->part = which;			/* qualifies field names in errors */
	r->col = 0;
	if (!reader_u16(r, &ncols, "column count"))
		return false;
	if (ncols > reader_left(r))
		return set_error(r->err, r->errsize,
						 "malformed %s: %s declares %u columns but only %zu bytes are left",
						 r->what, which, ncols, reader_left(r));
	if (ncols > d->colcap[slot])
	{
		free(d->cols[slot]);
		d->cols[slot] = xmalloc(sizeof(PgoColumn) * ncols);
		d->colcap[slot] = ncols;
	}
	for (int i = 0; i < ncols; i++)
	{
		PgoColumn  *c = &d->cols[slot][i];
		size_t		at = r->pos;
		uint8_t		kind;
		uint32_t	len;

		r->col = i + 1;
		if (!reader_u8(r, &kind, "kind"))
			return false;
		c->kind = (char) kind;
		c->data = NULL;
		c->len = 0;
		switch (kind)
		{
			case 'n':
			case 'u':
				break;
			case 't':
			case 'b':
				if (!reader_len32(r, &len, "length") ||
					!reader_bytes(r, len, &c->data, "value"))
					return false;
				c->len = len;
				break;
			default:
				return set_error(r->err, r->errsize,
								 "malformed %s: %s column %d has unknown kind %s at offset %zu (expected n, u, t or b)",
								 r->what, which, i + 1, byte_repr(kind, b), at);
		}
	}
	r->part = NULL;
	r->col = 0;
	t->ncols = ncols;
	t->cols = ncols > 0 ? d->cols[slot] : NULL;
	return true;
}

/* The action byte that introduces a tuple: one of `allowed`. */
static bool
read_action(Reader *r, const char *allowed, char *action)
{
	size_t		at = r->pos;
	uint8_t		a;
	char		b[16];

	if (!reader_u8(r, &a, "tuple type"))
		return false;
	if (a == 0 || strchr(allowed, a) == NULL)
		return set_error(r->err, r->errsize, "malformed %s: tuple type %s at offset %zu, expected one of %s",
						 r->what, byte_repr(a, b), at, allowed);
	*action = (char) a;
	return true;
}

/* "" means pg_catalog on the wire (pgoutput saves the bytes). */
static const char *
namespace_name(const char *s)
{
	return s[0] == '\0' ? "pg_catalog" : s;
}

/* ---- pgoutput: one function per message ------------------------------- */

static bool
decode_begin(Reader *r, PgoMessage *m)
{
	if (!reader_u64(r, &m->u.begin.final_lsn, "final LSN") ||
		!reader_i64(r, &m->u.begin.commit_time, "commit time") ||
		!reader_u32(r, &m->u.begin.xid, "xid"))
		return false;
	if (m->u.begin.final_lsn == 0)
		return set_error(r->err, r->errsize, "malformed %s: final LSN is 0/0", r->what);
	return true;
}

/* Commit and Stream Commit share the tail: flags(0), 2 LSNs, a time. */
static bool
read_commit_tail(Reader *r, uint8_t *flags, uint64_t *commit_lsn, uint64_t *end_lsn, int64_t *t)
{
	if (!reader_u8(r, flags, "flags") ||
		!reader_u64(r, commit_lsn, "commit LSN") ||
		!reader_u64(r, end_lsn, "end LSN") ||
		!reader_i64(r, t, "commit time"))
		return false;
	if (*flags != 0)
		return set_error(r->err, r->errsize, "malformed %s: unknown flags 0x%02x (must be 0)", r->what, *flags);
	return true;
}

static bool
decode_relation(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	PgoRelation *rel = &d->rel;
	const char *nsp;
	const char *name;
	uint8_t		ident;
	uint16_t	ncols;
	char		b[16];

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_u32(r, &rel->relid, "relation id") ||
		!reader_string(r, &nsp, "namespace") ||
		!reader_string(r, &name, "relation name") ||
		!reader_u8(r, &ident, "replica identity") ||
		!reader_u16(r, &ncols, "column count"))
		return false;
	if (ident != 'd' && ident != 'n' && ident != 'f' && ident != 'i')
		return set_error(r->err, r->errsize, "malformed %s: unknown replica identity %s (expected d, n, f or i)",
						 r->what, byte_repr(ident, b));
	if ((size_t) ncols * REL_COLUMN_MIN_BYTES > reader_left(r))
		return set_error(r->err, r->errsize,
						 "malformed %s: declares %u columns but only %zu bytes are left",
						 r->what, ncols, reader_left(r));
	rel->nspname = xstrdup(namespace_name(nsp));
	rel->relname = xstrdup(name);
	rel->replident = (char) ident;
	rel->cols = xcalloc(ncols > 0 ? ncols : 1, sizeof(PgoRelColumn));
	rel->ncols = ncols;			/* names are NULL until read: release is safe */
	for (int i = 0; i < ncols; i++)
	{
		PgoRelColumn *c = &rel->cols[i];
		uint8_t		flags;
		const char *cname;
		uint32_t	typmod;

		if (!reader_u8(r, &flags, "column flags"))
			return false;
		if (flags > 1)
			return set_error(r->err, r->errsize, "malformed %s: column %d has unknown flags 0x%02x",
							 r->what, i + 1, flags);
		if (!reader_string(r, &cname, "column name") ||
			!reader_u32(r, &c->typoid, "column type") ||
			!reader_u32(r, &typmod, "column typmod"))
			return false;
		c->key = flags == 1;
		c->name = xstrdup(cname);
		c->typmod = typmod <= INT32_MAX ? (int32_t) typmod : -(int32_t) (~typmod) - 1;
	}
	m->u.relation = *rel;
	return true;
}

static bool
decode_type(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	const char *nsp;

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_u32(r, &m->u.type.typoid, "type id") ||
		!reader_string(r, &nsp, "namespace") ||
		!reader_string(r, &m->u.type.typname, "type name"))
		return false;
	m->u.type.nspname = namespace_name(nsp);
	return true;
}

static bool
decode_insert(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	char		action;

	return read_stream_xid(d, r, &m->xid) &&
		reader_u32(r, &m->u.insert.relid, "relation id") &&
		read_action(r, "N", &action) &&
		read_tuple(d, r, 1, &m->u.insert.newtup, "new tuple");
}

static bool
decode_update(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	char		action;

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_u32(r, &m->u.update.relid, "relation id") ||
		!read_action(r, "KON", &action))
		return false;
	if (action != 'N')
	{
		m->u.update.oldkind = action;
		if (!read_tuple(d, r, 0, &m->u.update.oldtup, action == 'K' ? "old key" : "old tuple") ||
			!read_action(r, "N", &action))
			return false;
	}
	return read_tuple(d, r, 1, &m->u.update.newtup, "new tuple");
}

static bool
decode_delete(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	char		action;

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_u32(r, &m->u.delete_.relid, "relation id") ||
		!read_action(r, "KO", &action))
		return false;
	m->u.delete_.oldkind = action;
	return read_tuple(d, r, 0, &m->u.delete_.oldtup, action == 'K' ? "old key" : "old tuple");
}

static bool
decode_truncate(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	uint32_t	n;
	uint8_t		options;

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_len32(r, &n, "relation count") ||
		!reader_u8(r, &options, "options"))
		return false;
	if (options & ~(PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY))
		return set_error(r->err, r->errsize, "malformed %s: unknown options 0x%02x", r->what, options);
	if (n > reader_left(r) / 4)
		return set_error(r->err, r->errsize,
						 "malformed %s: declares %u relations but only %zu bytes are left",
						 r->what, n, reader_left(r));
	if ((int) n > d->relidcap)
	{
		free(d->relids);
		d->relids = xmalloc(sizeof(uint32_t) * n);
		d->relidcap = (int) n;
	}
	for (uint32_t i = 0; i < n; i++)
		if (!reader_u32(r, &d->relids[i], "relation id"))
			return false;		/* not reached: checked above */
	m->u.truncate.options = options;
	m->u.truncate.nrelids = (int) n;
	m->u.truncate.relids = n > 0 ? d->relids : NULL;
	return true;
}

static bool
decode_message(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	uint8_t		flags;
	uint32_t	len;

	if (!read_stream_xid(d, r, &m->xid) ||
		!reader_u8(r, &flags, "flags") ||
		!reader_u64(r, &m->u.message.lsn, "LSN") ||
		!reader_string(r, &m->u.message.prefix, "prefix") ||
		!reader_len32(r, &len, "content length") ||
		!reader_bytes(r, len, &m->u.message.content, "content"))
		return false;
	if (flags > 1)
		return set_error(r->err, r->errsize, "malformed %s: unknown flags 0x%02x", r->what, flags);
	m->u.message.transactional = flags == 1;
	m->u.message.len = len;
	return true;
}

static bool
decode_stream_start(Reader *r, PgoMessage *m)
{
	uint8_t		first;

	if (!reader_u32(r, &m->u.stream_start.xid, "xid") ||
		!reader_u8(r, &first, "first segment flag"))
		return false;
	if (m->u.stream_start.xid == 0)
		return set_error(r->err, r->errsize, "malformed %s: invalid xid 0", r->what);
	if (first > 1)
		return set_error(r->err, r->errsize, "malformed %s: first segment flag is %u (must be 0 or 1)",
						 r->what, first);
	m->u.stream_start.first_segment = first == 1;
	m->xid = m->u.stream_start.xid;
	return true;
}

static bool
decode_stream_commit(Reader *r, PgoMessage *m)
{
	if (!reader_u32(r, &m->u.stream_commit.xid, "xid") ||
		!read_commit_tail(r, &m->u.stream_commit.flags, &m->u.stream_commit.commit_lsn,
						  &m->u.stream_commit.end_lsn, &m->u.stream_commit.commit_time))
		return false;
	if (m->u.stream_commit.xid == 0)
		return set_error(r->err, r->errsize, "malformed %s: invalid xid 0", r->what);
	return true;
}

/*
 * Protocol 4 adds abort LSN and time only when streaming = parallel, which
 * the message does not announce: the length tells (8 or 24 bytes of body).
 */
static bool
decode_stream_abort(PgoDecoder *d, Reader *r, PgoMessage *m)
{
	if (!reader_u32(r, &m->u.stream_abort.xid, "xid") ||
		!reader_u32(r, &m->u.stream_abort.subxid, "subtransaction xid"))
		return false;
	if (m->u.stream_abort.xid == 0 || m->u.stream_abort.subxid == 0)
		return set_error(r->err, r->errsize, "malformed %s: invalid xid 0", r->what);
	if (d->proto >= PGO_PROTO_STREAM_PARALLEL && reader_left(r) > 0)
	{
		if (!reader_u64(r, &m->u.stream_abort.abort_lsn, "abort LSN") ||
			!reader_i64(r, &m->u.stream_abort.abort_time, "abort time"))
			return false;
		m->u.stream_abort.has_abort_info = true;
	}
	return true;
}

/* ---- pgoutput: dispatch ----------------------------------------------- */

/*
 * Is `kind` allowed here? Checks the protocol version (stream messages need
 * 2) and the stream state (invariant 3 in pgoutput.h).
 */
static bool
check_state(const PgoDecoder *d, char kind, char *err, size_t errsize)
{
	const char *name = pgo_kind_name(kind);
	bool		stream_kind = kind == 'S' || kind == 'E' || kind == 'c' || kind == 'A';

	if (stream_kind && d->proto < PGO_PROTO_STREAM)
		return set_error(err, errsize, "unexpected %s message: streaming needs protocol version 2, the decoder speaks %d",
						 name, d->proto);
	switch (kind)
	{
		case 'S':
			if (d->in_stream)
				return set_error(err, errsize, "unexpected Stream Start: transaction %u is already streaming",
								 d->stream_xid);
			break;
		case 'E':
			if (!d->in_stream)
				return set_error(err, errsize, "unexpected Stream Stop outside a stream");
			break;
		case 'B':
		case 'C':
		case 'c':
		case 'A':
			if (d->in_stream)
				return set_error(err, errsize, "unexpected %s inside the stream of transaction %u",
								 name, d->stream_xid);
			break;
		default:
			break;
	}
	return true;
}

bool
pgo_decode(PgoDecoder *d, const char *buf, size_t len, PgoMessage *out, char *err, size_t errsize)
{
	PgoMessage	m;
	Reader		r;
	char		what[48];
	char		b[16];
	char		kind;
	bool		ok;

	assert(decoder_check_state(d));
	relation_release(&d->rel);	/* the previous message's Relation ends here */
	if (buf == NULL || len == 0)
		return set_error(err, errsize, "empty pgoutput message");
	kind = buf[0];
	memset(&m, 0, sizeof(m));
	m.kind = kind;
	snprintf(what, sizeof(what), "%s message", pgo_kind_name(kind));
	reader_init(&r, buf, len, 1, what, err, errsize);

	if (!check_state(d, kind, err, errsize))
		return false;
	switch (kind)
	{
		case 'B':
			ok = decode_begin(&r, &m);
			break;
		case 'C':
			ok = read_commit_tail(&r, &m.u.commit.flags, &m.u.commit.commit_lsn,
								  &m.u.commit.end_lsn, &m.u.commit.commit_time);
			break;
		case 'O':
			ok = reader_u64(&r, &m.u.origin.lsn, "origin LSN") &&
				reader_string(&r, &m.u.origin.name, "origin name");
			m.xid = d->in_stream ? d->stream_xid : 0;
			break;
		case 'R':
			ok = decode_relation(d, &r, &m);
			break;
		case 'Y':
			ok = decode_type(d, &r, &m);
			break;
		case 'I':
			ok = decode_insert(d, &r, &m);
			break;
		case 'U':
			ok = decode_update(d, &r, &m);
			break;
		case 'D':
			ok = decode_delete(d, &r, &m);
			break;
		case 'T':
			ok = decode_truncate(d, &r, &m);
			break;
		case 'M':
			ok = decode_message(d, &r, &m);
			break;
		case 'S':
			ok = decode_stream_start(&r, &m);
			break;
		case 'E':
			ok = true;
			m.xid = d->stream_xid;
			break;
		case 'c':
			ok = decode_stream_commit(&r, &m);
			break;
		case 'A':
			ok = decode_stream_abort(d, &r, &m);
			break;
		case 'b':
		case 'P':
		case 'K':
		case 'r':
		case 'p':
			return set_error(err, errsize,
							 "unsupported pgoutput message %s (%s): two-phase decoding (protocol 3, two_phase) is not supported",
							 byte_repr((unsigned char) kind, b), pgo_kind_name(kind));
		default:
			return set_error(err, errsize, "unknown pgoutput message type %s",
							 byte_repr((unsigned char) kind, b));
	}
	if (!ok || !reader_end(&r))
		return false;

	/* the message is good: move the stream state on */
	if (kind == 'S')
	{
		d->in_stream = true;
		d->stream_xid = m.u.stream_start.xid;
	}
	else if (kind == 'E')
	{
		d->in_stream = false;
		d->stream_xid = 0;
	}
	assert(decoder_check_state(d));
	*out = m;
	return true;
}
