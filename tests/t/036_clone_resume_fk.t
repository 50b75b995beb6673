#!/usr/bin/env bash
# An interrupted clone converges (issue 12, 3b). Killed after `orders` was
# copied, resumed after new orders and their payments were written: the
# resume copies `payments` at a later snapshot than `orders`, so its foreign
# key cannot be built valid until apply has caught up. The resumed start
# builds it NOT VALID, follows, and validates it once apply is past the
# clone's latest snapshot; a failing validation is retried (never stopping
# apply), shown by status, and makes switchover refuse. A foreign key the
# source has NOT VALID stays NOT VALID; deferrable and ON DELETE clauses stay.
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

pg_start source
pg_start target
q source "CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, note text);
          INSERT INTO orders SELECT g, g % 100, repeat(md5(g::text), 10) FROM generate_series(1, 30000) g;
          CREATE TABLE payments (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, amount numeric);
          INSERT INTO payments SELECT g, g, g / 10.0 FROM generate_series(1, 20000) g;
          CREATE TABLE refunds (id int PRIMARY KEY, payment_id int,
                                CONSTRAINT refunds_payment_fk FOREIGN KEY (payment_id) REFERENCES payments (id)
                                  MATCH FULL ON UPDATE RESTRICT ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED);
          INSERT INTO refunds SELECT g, g FROM generate_series(1, 100) g;
          CREATE TABLE \"Notes\" (id int PRIMARY KEY, order_id int);
          INSERT INTO \"Notes\" VALUES (1, 1), (2, 999999);
          ALTER TABLE \"Notes\" ADD CONSTRAINT \"loose; NOT VALID\" FOREIGN KEY (order_id) REFERENCES orders NOT VALID" \
  >/dev/null || bail "fixture failed"

F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_bg() {  # start_bg [env...]: ferry start --jobs 1 in the background, pid in FP
  env "$@" "${F[@]}" start --jobs 1 >>"$TEST_TMP/out" 2>>"$TEST_TMP/err" &
  FP=$!
}

# 1. killed right after the first (largest) table is copied
( env FERRY_FAULT=copy.after-item:1 "${F[@]}" start --jobs 1 >"$TEST_TMP/out1" 2>"$TEST_TMP/err1" & wait $! ) 2>/dev/null
is "$?" 137 "the first start is killed after its first copied table"
is "$(q target "SELECT string_agg(relname, ',') FROM ferry.copy_item")" "orders" "orders was copied first, and alone"

# 2. the application goes on: new orders, payments for them, a refund
q source "INSERT INTO orders SELECT g, g % 100, 'new' FROM generate_series(30001, 30600) g;
          INSERT INTO payments SELECT g, g + 10000, 1 FROM generate_series(20001, 20600) g;
          INSERT INTO refunds VALUES (101, 20600)" >/dev/null
# and the target lost an order that a payment references (a divergence
# only a validation can find); put back further down
q target "DELETE FROM orders WHERE id = 5" >/dev/null

# 3. the resumed start converges
: >"$TEST_TMP/err"
start_bg
wait_following ferry 90; ok $? "the resumed start reaches phase following" ||
  diag "$(grep -E 'ERROR|error' "$TEST_TMP/err" | tail -5)"
is "$(q target "SELECT count(DISTINCT snapshot_lsn) FROM ferry.copy_item")" "2" "tables were copied at two snapshots"
unlike "$(cat "$TEST_TMP/err")" "is not present in table" "the post-data step did not fail on the foreign key"
like "$(cat "$TEST_TMP/err")" "building 2 foreign keys NOT VALID" "the post-data step built the two foreign keys NOT VALID"
is "$(q target "SELECT string_agg(conname || '=' || convalidated::text, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace AND conname <> 'refunds_payment_fk'")" \
   "loose; NOT VALID=false,payments_order_id_fkey=false" "orders' foreign key is NOT VALID while order 5 is missing"
is "$(q target "SELECT string_agg(conname, ',' ORDER BY conname) FROM ferry.pending_constraint WHERE conname <> 'refunds_payment_fk'")" \
   "payments_order_id_fkey" "ferry's state lists it as awaiting validation, not the one NOT VALID on the source"

# apply is not stopped by the failing validation (session_replication_role = replica checks no keys)
q source "INSERT INTO orders VALUES (40001, 1, 'later'); INSERT INTO payments VALUES (40001, 40001, 2)" >/dev/null
wait_applied ferry 60; ok $? "apply goes on"
for _ in $(seq 1 100); do grep -q "could not validate" "$TEST_TMP/err" && break; sleep 0.2; done
like "$(cat "$TEST_TMP/err")" 'could not validate foreign key payments_order_id_fkey on public.payments.*order_id\)=\(5\) is not present' \
     "the failing validation is logged with the reason"
like "$(cat "$TEST_TMP/err")" 'validated foreign key refunds_payment_fk on public.refunds' "the other one is validated"
st=$("${F[@]}" status 2>&1)
like "$st" "NOT VALID +1 foreign key awaits validation" "status says a foreign key awaits validation"
like "$st" "public.payments payments_order_id_fkey: .*is not present" "and which one, with the last error"
js=$("${F[@]}" --json status 2>/dev/null)
is "$(printf '%s' "$js" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(",".join(c["constraint"] for c in d["constraints_awaiting_validation"]))')" \
   "payments_order_id_fkey" "status --json lists it"
"${F[@]}" switchover --yes --timeout 20 >"$TEST_TMP/sw.out" 2>"$TEST_TMP/sw.err"
is "$?" 1 "switchover is refused while a foreign key is NOT VALID"
like "$(cat "$TEST_TMP/sw.err")" "1 foreign key on the target is not validated yet \(public.payments payments_order_id_fkey\); nothing was frozen" \
     "saying which and that nothing was frozen"
is "$(q source "SELECT current_setting('default_transaction_read_only')")" "off" "the source is not frozen"

# 4. repaired: the next retry validates it
q target "SET session_replication_role = replica; INSERT INTO orders SELECT g, g % 100, repeat(md5(g::text), 10) FROM generate_series(5, 5) g" >/dev/null
for _ in $(seq 1 150); do
  [ "$(q target "SELECT convalidated FROM pg_constraint WHERE conname = 'payments_order_id_fkey'")" = t ] && break
  sleep 0.2
done
is "$(q target "SELECT string_agg(conname || '=' || convalidated::text, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")" \
   "loose; NOT VALID=false,payments_order_id_fkey=true,refunds_payment_fk=true" \
   "a retry validates it; the source's NOT VALID one stays NOT VALID"
is "$(q target "SELECT count(*) FROM ferry.pending_constraint")" "0" "nothing awaits validation any more"
is "$(q target "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'refunds_payment_fk'")" \
   "FOREIGN KEY (payment_id) REFERENCES payments(id) MATCH FULL ON UPDATE RESTRICT ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED" \
   "match, actions and deferrability kept"
is "$(q target "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'payments_order_id_fkey'")" \
   "$(q source "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'payments_order_id_fkey'")" \
   "the definition equals the source's"
unlike "$("${F[@]}" status 2>&1)" "awaits validation" "status no longer lists it"
wait_applied ferry 60
is "$(db_checksum target)" "$(db_checksum source)" "every table equals the source (checksums)"
stop_cleanly

# a fresh clone builds its foreign keys valid at once, nothing pending
QDB=postgres q source "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots" >/dev/null
QDB=postgres q target "DROP DATABASE app WITH (FORCE)" >/dev/null
QDB=postgres q target "CREATE DATABASE app" >/dev/null
"${F[@]}" clone --jobs 1 >"$TEST_TMP/out2" 2>"$TEST_TMP/err2"
is "$?" 0 "a fresh clone finishes"
is "$(q target "SELECT string_agg(conname || '=' || convalidated::text, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace")" \
   "loose; NOT VALID=false,payments_order_id_fkey=true,refunds_payment_fk=true" "a fresh clone builds them valid directly"
is "$(q target "SELECT count(*) FROM ferry.pending_constraint")" "0" "and records none as pending"
done_testing
