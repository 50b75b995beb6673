-- one client: a 50,000-row transaction (all of bulk rewritten, its keys
-- changed, or deleted and inserted again), now and then a truncate of the
-- keyless table, then a pause
\set r random(0, 3)
\if :r = 0
UPDATE bulk SET v = md5(v), c = c + 1;
\elif :r = 1
UPDATE bulk SET id = id + 100000;
\elif :r = 2
BEGIN;
DELETE FROM bulk;
INSERT INTO bulk SELECT g, :client_id, md5(g::text) FROM generate_series(1, 50000) g;
COMMIT;
\else
BEGIN;
TRUNCATE log_nokey;
INSERT INTO log_nokey SELECT g, 'bulk' FROM generate_series(1, 50000) g;
COMMIT;
\endif
\sleep 1500 ms
