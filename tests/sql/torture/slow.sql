-- a transaction that stays open while the others commit around it
\set o random(1, 5000)
\set k random(0, 149)
BEGIN;
INSERT INTO ev (o, v) VALUES (:o, 'slow');
\sleep 150 ms
UPDATE acct SET bal = bal - 1 WHERE o = :o;
INSERT INTO parts VALUES (nextval('parts_new_ids'), :k, 'slow');
\sleep 100 ms
DELETE FROM parts WHERE id = (SELECT min(id) FROM parts WHERE id >= 1000000);
COMMIT;
