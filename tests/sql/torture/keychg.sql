-- key changes, deletes, a delete + insert on the REPLICA IDENTITY FULL table
\set o random(1, 5000)
\set a random(0, 49)
BEGIN;
UPDATE acct SET id = id + 100000 WHERE o = :o;
DELETE FROM ev WHERE id = (SELECT min(id) FROM ev);
DELETE FROM full_t WHERE ctid = (SELECT ctid FROM full_t WHERE a = :a LIMIT 1);
INSERT INTO full_t VALUES (:a, 'y' || :a);
COMMIT;
