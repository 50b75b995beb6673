#!/usr/bin/env bash
# SIGTERM stops ferry start promptly even while the target makes apply wait:
# a lock held on the target blocks apply's statement (and, for a large
# transaction, its sends), and a clean stop must not wait for that lock. The
# transaction in flight is abandoned (rolled back on the target, its position
# not recorded), exit 0; the next start applies it exactly once.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
start_following
q source "INSERT INTO kv VALUES (8000001, 'before', 0)" >/dev/null
wait_applied ferry 60; ok $? "a transaction before the lock is applied"

# a session on the target holds kv for 60 s
lock_target_kv
# a small transaction, then a large one (about 20 MB of statements: more than
# the socket buffers hold, so apply also blocks sending)
q source "INSERT INTO kv VALUES (8000002, 'blocked', 0)" >/dev/null
q source "INSERT INTO kv SELECT g, repeat('x', 60), 0 FROM generate_series(8100001, 8300000) g" >/dev/null
waiting=$(apply_lock_waits)
is "$waiting" 1 "apply waits for the lock on the target"
sleep 1

t0=$(date +%s%N)
kill -TERM "$FP"
for _ in $(seq 1 300); do kill -0 "$FP" 2>/dev/null || break; sleep 0.1; done
wait "$FP"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$rc" 0 "SIGTERM while apply waits on the target: exit 0"
ok "$([ "$ms" -lt 5000 ]; echo $?)" "and within 5 s, not when the lock goes (took $ms ms)"
like "$(cat "$TEST_TMP/err")" "apply interrupted while" "the log says the transaction in flight was abandoned"
unlike "$(cat "$TEST_TMP/err")" " ERROR: " "no error logged"
is "$(q target "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'ferry%'")" 0 "no ferry session left on the target"
slot=$(QDB=postgres q source "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'ferry'")
is "$(q target "SELECT '$slot'::pg_lsn <= '$(applied_position)'::pg_lsn")" t "the slot is not confirmed past the target"

release_target_kv
is "$(q target "SELECT count(*) FROM kv WHERE id >= 8000002")" 0 "nothing of the abandoned transactions reached the target"
ferry_start --jobs 2
wait_applied ferry 120; ok $? "after the lock, a new ferry start catches up"
is "$(db_checksum target)" "$(db_checksum source)" "contents equal: every transaction applied exactly once"
stop_cleanly
done_testing
