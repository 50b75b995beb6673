-- small mixed transaction: updates of every kind of table, a partition move
\set o random(1, 5000)
\set a random(0, 49)
\set p random(1, 3000)
\set k random(0, 149)
BEGIN;
UPDATE acct SET bal = bal + 1, note = md5(note) WHERE o = :o;
INSERT INTO ev (o, v) VALUES (:o, 'c' || :client_id);
UPDATE parts SET k = :k WHERE id = :p;
INSERT INTO log_nokey VALUES (:o, 'c' || :client_id);
UPDATE full_t SET b = b || '.' WHERE ctid = (SELECT ctid FROM full_t WHERE a = :a LIMIT 1);
COMMIT;
