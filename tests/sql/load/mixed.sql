\set id random(1, 5000)

\set d random(1, 200)
\set a random(0, 49)
\set p random(1, 2000)
\set k random(0, 99)
BEGIN;
UPDATE kv SET v = md5(v), n = n + 1 WHERE id = :id;
INSERT INTO kv VALUES (nextval('kv_new_ids'), 'new', 0);
UPDATE docs SET hits = hits + 1 WHERE id = :d;
SAVEPOINT s1;
INSERT INTO kv VALUES (-:id, 'rolled back', 0) ON CONFLICT DO NOTHING;
ROLLBACK TO SAVEPOINT s1;
UPDATE full_t SET b = b || '.' WHERE ctid = (SELECT ctid FROM full_t WHERE a = :a LIMIT 1);
UPDATE parts SET k = :k WHERE id = :p;
INSERT INTO log_nokey (msg) VALUES ('client ' || :client_id);
INSERT INTO gen (a) VALUES (:id);
COMMIT;
