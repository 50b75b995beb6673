/*
 * writer.c: an application stand-in for bench/switchover.sh. Each of N
 * writer processes inserts one row at a time into bench_writes at a steady
 * rate, connecting with the conninfo found in CONNFILE (re-read on every
 * reconnect, so a switch hook that rewrites the file moves the writers to
 * the other server, as a config change or a pooler would). Every attempt is
 * logged on stdout as
 *     <unix time in microseconds> <ok|fail> <server host> <client> <id>
 * (host as libpq reports it: the name or socket directory; "-" when
 * the connection itself failed)
 * so the script can find the first failed write on the source, the first
 * successful one on the target, and check that every acknowledged row
 * exists exactly once on the target afterwards.
 *
 * Usage: writer CONNFILE CLIENTS RATE_PER_CLIENT SECONDS [TABLE]
 * (TABLE defaults to bench_writes; it needs id bigserial and client int.)
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long) tv.tv_sec * 1000000 + tv.tv_usec;
}

static PGconn *
connect_from(const char *file)
{
	char		buf[1024];
	FILE	   *f = fopen(file, "r");
	size_t		n;
	PGconn	   *c;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	c = PQconnectdb(buf);
	if (PQstatus(c) != CONNECTION_OK)
	{
		PQfinish(c);
		return NULL;
	}
	return c;
}

static const char *table = "bench_writes";

static void
client(const char *file, int id, double rate, double seconds)
{
	long long	start = now_us(),
				next = start;
	long long	interval = (long long) (1e6 / rate);
	PGconn	   *c = NULL;
	char		cid[16];
	char		sql[256];

	snprintf(cid, sizeof(cid), "%d", id);
	snprintf(sql, sizeof(sql), "INSERT INTO %s (client) VALUES ($1::int) RETURNING id", table);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (now_us() - start < (long long) (seconds * 1e6))
	{
		long long	t;
		const char *params[1] = {cid};
		PGresult   *res;

		if (c == NULL && (c = connect_from(file)) == NULL)
		{
			printf("%lld fail - %d 0\n", now_us(), id);
			usleep(10000);
			continue;
		}
		t = now_us();
		if (t < next)
			usleep((useconds_t) (next - t));
		next += interval;
		res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			printf("%lld ok %s %d %s\n", now_us(), PQhost(c), id, PQgetvalue(res, 0, 0));
		else
		{
			printf("%lld fail %s %d 0\n", now_us(), PQhost(c), id);
			PQfinish(c);
			c = NULL;
			usleep(5000);
		}
		PQclear(res);
	}
	PQfinish(c);
}

int
main(int argc, char **argv)
{
	int			n;

	if (argc != 5 && argc != 6)
	{
		fprintf(stderr, "usage: writer CONNFILE CLIENTS RATE_PER_CLIENT SECONDS [TABLE]\n");
		return 2;
	}
	if (argc == 6)
		table = argv[5];
	n = atoi(argv[2]);
	for (int i = 0; i < n; i++)
		if (fork() == 0)
		{
			client(argv[1], i, atof(argv[3]), atof(argv[4]));
			_exit(0);
		}
	while (wait(NULL) > 0)
		;
	return 0;
}
