/*
 * pgoutput.h: a pure decoder for the two layers of a logical replication
 * stream: the CopyData framing of a START_REPLICATION connection (XLogData,
 * primary keepalive, standby status update) and the pgoutput message format
 * inside XLogData, protocol versions 1 and 2 (PostgreSQL 10 to 16).
 *
 * Nothing here does I/O or knows libpq: the stream stage hands in bytes, the
 * apply stage gets structs. Every input is untrusted (a bug, a proxy or a
 * newer server can send anything), so each decoder checks every length
 * against the bytes it was given and fails with a one-line reason instead of
 * reading past the end or allocating what the input merely claims to need.
 *
 * Design: message formats
 * -----------------------
 * All integers are big-endian (network order); LSNs are Int64; timestamps
 * are Int64 microseconds since 2000-01-01 00:00 UTC; a String is bytes up to
 * and including a NUL, which must lie inside the buffer.
 *
 * Framing. Each CopyData payload on a replication connection is one of:
 *   'w' XLogData   Int64 wal_start, Int64 wal_end, Int64 send_time, Byte[n]
 *                  (25-byte header; the rest is one pgoutput message)
 *   'k' keepalive  Int64 wal_end, Int64 send_time, Byte1 reply_requested
 *                  (exactly 18 bytes)
 * and the client sends
 *   'r' status     Int64 write, Int64 flush, Int64 apply, Int64 now,
 *                  Byte1 reply_requested (exactly 34 bytes)
 *
 * pgoutput. The first byte names the message; "[xid]" is an Int32 present
 * only between Stream Start and Stream Stop (protocol 2), where it is the xid
 * of the (sub)transaction the change belongs to.
 *   'B' Begin          Int64 final_lsn, Int64 commit_time, Int32 xid
 *   'C' Commit         Int8 flags(0), Int64 commit_lsn, Int64 end_lsn,
 *                      Int64 commit_time
 *   'O' Origin         Int64 lsn, String name
 *   'R' Relation       [xid] Int32 relid, String nspname ("" = pg_catalog),
 *                      String relname, Int8 replident ('d','n','f','i'),
 *                      Int16 ncols, ncols x { Int8 flags (1 = key),
 *                      String name, Int32 typoid, Int32 typmod }
 *   'Y' Type           [xid] Int32 typoid, String nspname, String typname
 *   'I' Insert         [xid] Int32 relid, 'N' TupleData
 *   'U' Update         [xid] Int32 relid, [('K'|'O') TupleData], 'N' TupleData
 *   'D' Delete         [xid] Int32 relid, ('K'|'O') TupleData
 *   'T' Truncate       [xid] Int32 nrelids, Int8 options (1 CASCADE,
 *                      2 RESTART IDENTITY), nrelids x Int32 relid
 *   'M' Message        [xid] Int8 flags (1 = transactional), Int64 lsn,
 *                      String prefix, Int32 len, Byte[len] content
 *   'S' Stream Start   Int32 xid, Int8 first_segment (0 or 1)      proto 2
 *   'E' Stream Stop    (nothing)                                   proto 2
 *   'c' Stream Commit  Int32 xid, Int8 flags(0), Int64 commit_lsn,
 *                      Int64 end_lsn, Int64 commit_time            proto 2
 *   'A' Stream Abort   Int32 xid, Int32 subxid
 *                      [Int64 abort_lsn, Int64 abort_time]  proto 4 only,
 *                      with streaming = parallel (PostgreSQL 16)
 *   TupleData          Int16 ncols, ncols x one of
 *                      'n' (null), 'u' (unchanged TOAST value, not sent),
 *                      't' Int32 len Byte[len] (text), 'b' Int32 len
 *                      Byte[len] (binary, the type's send format)
 * The two-phase messages of protocol 3 ('b' Begin Prepare, 'P' Prepare,
 * 'K' Commit Prepared, 'r' Rollback Prepared, 'p' Stream Prepare) are
 * recognised and rejected as unsupported: ferry never asks for two_phase.
 *
 * Invariants the decoder enforces:
 *   1. No read past `len`; a message must be consumed exactly (trailing
 *      bytes are an error: they mean a format we do not understand).
 *   2. Counts are checked against the bytes left before anything is
 *      allocated: a TupleData column takes at least 1 byte, a Relation
 *      column at least 10, a Truncate relid 4. So scratch memory is bounded
 *      by a small multiple of the largest message decoded.
 *   3. Stream state: 'S' is accepted only outside a stream, 'E' only inside
 *      one; 'B', 'C', 'c' and 'A' only outside (the server sends the end of
 *      a streamed transaction after Stream Stop). Inside a stream R, Y, I,
 *      U, D, T and M carry the xid prefix. Stream messages are errors on a
 *      protocol 1 decoder. State changes only when a message decodes.
 *   4. Flags that the protocol defines as "currently 0" or "0 or 1" are
 *      checked, and so are the action bytes ('N','K','O'), column kinds and
 *      replica identity; a violation is reported with the offending byte.
 *
 * Ownership: a decoded message borrows from two places. Strings, column
 * data and message content point into the caller's buffer (so the buffer
 * must outlive the use of the message). Tuple column arrays, truncate relid
 * arrays and the Relation of an 'R' message live in the decoder and are
 * valid until the next pgo_decode() or pgo_decoder_free(), whether that call
 * succeeds or not. Keep a Relation with pgo_relation_copy().
 *
 * A decoder is not thread-safe; use one per stream.
 */
#ifndef FERRY_PGOUTPUT_H
#define FERRY_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- framing ---------------------------------------------------------- */

#define REPL_XLOGDATA_HEADER 25	/* 'w' + 3 x Int64 */
#define REPL_KEEPALIVE_SIZE 18	/* 'k' + 2 x Int64 + Byte1 */
#define REPL_STATUS_SIZE 34		/* 'r' + 4 x Int64 + Byte1 */

typedef enum ReplFrameKind
{
	REPL_XLOGDATA,
	REPL_KEEPALIVE,
} ReplFrameKind;

typedef struct ReplFrame
{
	ReplFrameKind kind;
	uint64_t	wal_start;		/* XLogData: WAL position of this data; 0 for keepalive */
	uint64_t	wal_end;		/* end of WAL on the server */
	int64_t		send_time;		/* server clock, microseconds since 2000-01-01 */
	bool		reply_requested;	/* keepalive: answer now or be timed out */
	const char *data;			/* XLogData payload (a pgoutput message), borrowed */
	size_t		len;
} ReplFrame;

/*
 * Parse the payload of one CopyData message received after START_REPLICATION.
 * `buf` holds `len` bytes (the CopyData body, without the 'd' and length).
 * On success fills *out (data borrows from buf) and returns true. On
 * malformed input or an unknown message type returns false with a one-line
 * reason in err (if err is not NULL) and leaves *out alone.
 */
bool		repl_parse_frame(const char *buf, size_t len, ReplFrame *out, char *err, size_t errsize);

/*
 * Build a Standby Status Update ('r') into out: write/flush/apply LSNs, the
 * client clock `now_us` (microseconds since 2000-01-01) and whether the
 * server should reply at once. Returns REPL_STATUS_SIZE (34).
 */
size_t		repl_build_status(char out[REPL_STATUS_SIZE], uint64_t write_lsn, uint64_t flush_lsn,
							  uint64_t apply_lsn, int64_t now_us, bool reply);

/* The current time in microseconds since 2000-01-01 UTC (CLOCK_REALTIME). */
int64_t		repl_now_us(void);

/* ---- pgoutput messages ------------------------------------------------ */

#define PGO_PROTO_MIN 1
#define PGO_PROTO_STREAM 2			/* streaming of in-progress transactions (PG 14) */
#define PGO_PROTO_TWOPHASE 3		/* two-phase messages: not supported (PG 15) */
#define PGO_PROTO_STREAM_PARALLEL 4	/* Stream Abort may carry lsn + time (PG 16) */
#define PGO_PROTO_MAX 4

/* Logical messages need PGO_MESSAGES_MIN_VERSION (pgversion.h). */

#define PGO_TRUNCATE_CASCADE 1
#define PGO_TRUNCATE_RESTART_IDENTITY 2

typedef struct PgoColumn
{
	char		kind;			/* 'n' null, 'u' unchanged TOAST, 't' text, 'b' binary */
	const char *data;			/* 't'/'b': borrowed from the message buffer, NOT NUL-terminated */
	uint32_t	len;			/* 't'/'b': bytes at data; 0 otherwise */
} PgoColumn;

typedef struct PgoTuple
{
	int			ncols;
	PgoColumn  *cols;			/* decoder scratch, valid until the next pgo_decode */
} PgoTuple;

typedef struct PgoRelColumn
{
	bool		key;			/* part of the replica identity */
	char	   *name;
	uint32_t	typoid;
	int32_t		typmod;
} PgoRelColumn;

typedef struct PgoRelation
{
	uint32_t	relid;
	char	   *nspname;		/* "pg_catalog" when the wire says "" */
	char	   *relname;
	char		replident;		/* 'd' default, 'n' nothing, 'f' full, 'i' index */
	int			ncols;
	PgoRelColumn *cols;
} PgoRelation;

typedef struct PgoMessage
{
	char		kind;			/* 'B','C','O','R','Y','I','U','D','T','M','S','E','c','A' */
	/*
	 * Inside Stream Start..Stop: for R, Y, I, U, D, T, M the (sub)transaction
	 * xid sent with the message; for S, E and O the xid of the streamed
	 * top-level transaction. 0 outside a stream.
	 */
	uint32_t	xid;
	union
	{
		struct
		{
			uint64_t	final_lsn;
			int64_t		commit_time;
			uint32_t	xid;
		}			begin;
		struct
		{
			uint8_t		flags;
			uint64_t	commit_lsn;
			uint64_t	end_lsn;
			int64_t		commit_time;
		}			commit;
		struct
		{
			uint64_t	lsn;
			const char *name;
		}			origin;
		PgoRelation relation;	/* owned by the decoder, see pgo_relation_copy */
		struct
		{
			uint32_t	typoid;
			const char *nspname;	/* "pg_catalog" when the wire says "" */
			const char *typname;
		}			type;
		struct
		{
			uint32_t	relid;
			PgoTuple	newtup;
		}			insert;
		struct
		{
			uint32_t	relid;
			char		oldkind;	/* 'K' key, 'O' old full row, 0 none */
			PgoTuple	oldtup;		/* ncols 0 when oldkind is 0 */
			PgoTuple	newtup;
		}			update;
		struct
		{
			uint32_t	relid;
			char		oldkind;	/* 'K' or 'O' */
			PgoTuple	oldtup;
		}			delete_;
		struct
		{
			uint8_t		options;	/* PGO_TRUNCATE_* bits */
			int			nrelids;
			uint32_t   *relids;		/* decoder scratch */
		}			truncate;
		struct
		{
			bool		transactional;
			uint64_t	lsn;
			const char *prefix;
			const char *content;	/* borrowed, not NUL-terminated */
			uint32_t	len;
		}			message;
		struct
		{
			uint32_t	xid;
			bool		first_segment;
		}			stream_start;
		struct
		{
			uint32_t	xid;
			uint8_t		flags;
			uint64_t	commit_lsn;
			uint64_t	end_lsn;
			int64_t		commit_time;
		}			stream_commit;
		struct
		{
			uint32_t	xid;		/* top-level transaction */
			uint32_t	subxid;		/* == xid when the whole transaction aborts */
			bool		has_abort_info;	/* proto 4, streaming = parallel */
			uint64_t	abort_lsn;	/* 0 unless has_abort_info */
			int64_t		abort_time;
		}			stream_abort;
	}			u;
} PgoMessage;

typedef struct PgoDecoder PgoDecoder;

/*
 * A decoder for pgoutput protocol `proto_version` (PGO_PROTO_MIN ..
 * PGO_PROTO_MAX; what was passed as proto_version to START_REPLICATION).
 * Returns NULL for a version outside that range. Free with pgo_decoder_free.
 */
PgoDecoder *pgo_decoder_new(int proto_version);
void		pgo_decoder_free(PgoDecoder *d);

/*
 * Decode the pgoutput message in buf[0..len) (an XLogData payload, or a row
 * of pg_logical_slot_*_binary_changes). On success fills *out and returns
 * true; see the ownership note above for what *out borrows. On malformed
 * input returns false with a one-line reason in err (if err is not NULL),
 * leaves *out and the stream state alone. Never reads outside buf.
 * Side effects: 'S' and 'E' enter and leave the decoder's stream state;
 * the scratch of the previous message is overwritten.
 */
bool		pgo_decode(PgoDecoder *d, const char *buf, size_t len, PgoMessage *out,
					   char *err, size_t errsize);

/* Is the decoder between a Stream Start and its Stream Stop? */
bool		pgo_in_stream(const PgoDecoder *d);

/* A readable name for a message kind ("Insert", "Stream Start", ...), or "unknown". */
const char *pgo_kind_name(char kind);

/* Deep copy of a relation (xmalloc'ed, owned by the caller). */
PgoRelation *pgo_relation_copy(const PgoRelation *r);
/* Free a relation made by pgo_relation_copy; NULL is fine. Never pass
 * &msg.u.relation: that one belongs to the decoder. */
void		pgo_relation_free(PgoRelation *r);

#endif
