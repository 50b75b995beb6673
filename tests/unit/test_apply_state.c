/*
 * test_apply_state.c: unit tests for the pure parts of apply's confirmation
 * rule: the flush queue (flushq.h: which committed batches are durable on
 * the target) and the state machine (apply_int.h: ApplyState, its arrows,
 * and apply_caught_up, the one rule for confirming past the durable
 * position).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "apply_int.h"
#include "flushq.h"
#include "tap.h"

static void
test_flushq(void)
{
	FlushQueue	q;

	memset(&q, 0, sizeof(q));
	ok(!flushq_unknown(&q), "an empty queue knows everything");
	is_int((long long) flushq_flushed(&q, 1000), 0, "a flush with nothing committed makes nothing durable");

	flushq_committed(&q, 100);
	ok(flushq_unknown(&q), "a committed batch is unknown before its mark");
	is_int((long long) flushq_flushed(&q, 1u << 30), 0, "... and a flush cannot make it durable without a mark");
	flushq_committed(&q, 200);
	flushq_mark(&q, 5000);		/* both commits lie before target WAL 5000 */
	ok(flushq_unknown(&q), "marked but not flushed: still unknown");
	is_int((long long) flushq_flushed(&q, 4999), 0, "a flush short of the mark: nothing durable");
	is_int((long long) flushq_flushed(&q, 5000), 200, "a flush at the mark: the last batch before it is durable");
	ok(!flushq_unknown(&q), "then nothing is unknown");

	flushq_mark(&q, 6000);
	ok(!flushq_unknown(&q), "a mark with nothing committed since adds nothing");

	/* several marks, a flush passing some of them */
	flushq_committed(&q, 300);
	flushq_mark(&q, 7000);
	flushq_committed(&q, 400);
	flushq_mark(&q, 8000);
	flushq_committed(&q, 500);
	flushq_mark(&q, 9000);
	flushq_committed(&q, 600);	/* unmarked */
	is_int((long long) flushq_flushed(&q, 8500), 400, "a flush between marks: the batches before the passed mark");
	is_int((long long) flushq_flushed(&q, 8500), 0, "the same flush again: nothing new");
	is_int((long long) flushq_flushed(&q, 1u << 30), 500, "a flush past every mark: up to the last marked batch");
	ok(flushq_unknown(&q), "the unmarked batch stays unknown whatever is flushed");
	flushq_mark(&q, 9500);
	is_int((long long) flushq_flushed(&q, 9500), 600, "once marked and flushed it is durable");

	/* many marks: the queue grows */
	for (uint64_t i = 1; i <= 1000; i++)
	{
		flushq_committed(&q, 1000 + i);
		flushq_mark(&q, 100000 + i * 10);
	}
	is_int((long long) flushq_flushed(&q, 100000 + 500 * 10), 1500, "1000 marks: a flush halfway");
	is_int((long long) flushq_flushed(&q, 100000 + 1000 * 10), 2000, "... and to the end");
	ok(!flushq_unknown(&q), "queue empty");
	flushq_release(&q);
}

static const char *const names[] = {"idle", "batch", "txn", "skip", "batch-skip", "broken"};

static void
test_moves(void)
{
	/* the arrows drawn at ApplyState, and only those (broken is reachable from anywhere) */
	static const bool want[6][6] = {
		/* to:       idle   batch  txn    skip   bskip  broken */
		/* idle  */ {false, false, true, true, false, true},
		/* batch */ {true, false, true, false, true, true},
		/* txn   */ {false, true, false, false, true, true},
		/* skip  */ {true, false, false, false, false, true},
		/* bskip */ {false, true, false, false, false, true},
		/* broken */ {false, false, false, false, false, true},
	};
	int			wrong = 0;

	for (int f = 0; f < 6; f++)
		for (int t = 0; t < 6; t++)
			if (apply_state_move_ok((ApplyState) f, (ApplyState) t) != want[f][t])
			{
				printf("# %s -> %s: got %d\n", names[f], names[t], !want[f][t]);
				wrong++;
			}
	is_int(wrong, 0, "the state machine allows exactly the drawn arrows");
}

static void
test_caught_up(void)
{
	Apply		a;

	memset(&a, 0, sizeof(a));
	a.state = AS_IDLE;
	ok(apply_caught_up(&a), "idle, nothing in flight, nothing unknown: caught up");
	for (int s = AS_BATCH; s <= AS_BROKEN; s++)
	{
		char		name[64];

		a.state = (ApplyState) s;
		snprintf(name, sizeof(name), "%s: not caught up", names[s]);
		ok(!apply_caught_up(&a), name);
	}
	a.state = AS_IDLE;
	a.nsent = 1;
	ok(!apply_caught_up(&a), "a result still owed (a COMMIT in flight): not caught up");
	a.nsent = 0;
	a.stashed = true;
	ok(!apply_caught_up(&a), "a message read ahead: not caught up");
	a.stashed = false;
	flushq_committed(&a.fq, 42);
	ok(!apply_caught_up(&a), "a committed batch not known durable: not caught up");
	flushq_mark(&a.fq, 1000);
	ok(!apply_caught_up(&a), "marked, not flushed: not caught up");
	(void) flushq_flushed(&a.fq, 1000);
	ok(apply_caught_up(&a), "flushed: caught up again");
	flushq_release(&a.fq);
}

int
main(void)
{
	test_flushq();
	test_moves();
	test_caught_up();
	return done_testing();
}
