/*
 * metrics.h: `ferry start --metrics-listen ADDR:PORT`, Prometheus metrics.
 *
 * Design. A process-wide registry of values that the stages set as they go
 * (clone and copy: phase, rows and bytes copied per table; follow: applied
 * position, changes and transactions applied, rates, reconnects, and what it
 * samples from the source: its WAL position and the WAL the slot retains),
 * and an HTTP server (libmicrohttpd, its own thread) that renders the
 * registry in the Prometheus text exposition format (version 0.0.4) on
 * every GET /metrics; any other path is 404.
 *
 * Concurrency. Scalars are C11 atomics: a setter is one atomic store, costs
 * the same whether or not the endpoint runs, and never blocks a stage. The
 * phase and the per-table counters (which change at most once per copied
 * item) sit behind one mutex. A scrape reads each value once; values of
 * one scrape may be from slightly different instants, as in any exporter.
 *
 * Contents. Only the migration name and table names appear as labels:
 * never a connection string, so never a password.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

/* the default port when --metrics-listen gives only an address */
#define METRICS_DEFAULT_ADDR "127.0.0.1"
/* how often follow's coordinator samples the source (metrics_poll_source) */
#define METRICS_LAG_POLL_MS 1000
#define METRICS_RETAINED_POLL_MS 10000

/*
 * Split "ADDR:PORT", ":PORT", "PORT" or "[IPv6]:PORT" into host (ADDR,
 * default 127.0.0.1) and port (1-65535). False with a reason in *errmsg
 * (owned) when it does not parse. Pure.
 */
bool		metrics_parse_listen(const char *spec, char *host, size_t hostsize, int *port, char **errmsg);

/*
 * Bind `spec` and serve the metrics of migration `name` from a thread. On
 * failure (bad address, port in use) logs one line with the fix and returns
 * false; nothing is left running. Call before any work starts.
 */
bool		metrics_start(const char *spec, const char *name);
/* Stop serving (idempotent). */
void		metrics_stop(void);

/* --- setters: any thread, any time, server running or not --- */

/* copying, indexing, cloned, following, ...; copied */
void		metrics_set_phase(const char *phase);
/* applied position, its source commit time (us since 2000-01-01), totals this process */
void		metrics_set_applied(uint64_t lsn, int64_t commit_time_pg_us, int64_t changes, int64_t txns);
void		metrics_set_rates(double changes_per_second, double txns_per_second);
/* the source's current WAL position; WAL retained by the slot (bytes) */
void		metrics_set_source_lsn(uint64_t lsn);
void		metrics_set_retained(int64_t bytes);
void		metrics_add_reconnect(void);
/* UPDATEs/DELETEs that matched no row on the target (divergence) */
void		metrics_add_unmatched(int64_t n);
/* changes found on the old source after a switchover (watch.h) */
void		metrics_add_source_writes(int64_t n);
/* a table's copy: add to its counters (rows and bytes may be 0 to list it) */
void		metrics_table_add(const char *nspname, const char *relname, int64_t rows, int64_t bytes);
/* a table's copy as the target's state records it (replaces the counters) */
void		metrics_table_set(const char *nspname, const char *relname, int64_t rows, int64_t bytes);
/* Forget every value (tests). */
void		metrics_reset(void);

/*
 * Samples from the servers, for follow's coordinator. metrics_poll_source()
 * reads the source's WAL position (every METRICS_LAG_POLL_MS) and the WAL
 * the slot retains (every METRICS_RETAINED_POLL_MS); it returns at once
 * between samples, does nothing when no server runs, and ignores failures
 * (the coordinator's own queries report a lost connection).
 * metrics_load_copy_state() sets the per-table counters from the target's
 * ferry.copy_plan/copy_item rows.
 */
void		metrics_poll_source(PGconn *src, const char *slot);
void		metrics_load_copy_state(PGconn *tgt, const char *name);

/* The exposition text for migration `name` (owned). */
char	   *metrics_render(const char *name);

#endif
