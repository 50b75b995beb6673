\set id random(1, 5000)
\set a random(0, 49)
\set d random(1, 200)
BEGIN;
-- primary key change (sign flip cannot collide)
UPDATE kv SET id = -id WHERE id = :id AND id > 0;
DELETE FROM full_t WHERE ctid = (SELECT ctid FROM full_t WHERE a = :a LIMIT 1);
INSERT INTO full_t VALUES (:a, 'x' || :a);
UPDATE docs SET body = repeat(md5(random()::text), 400) WHERE id = :d;
INSERT INTO child (parent_id) VALUES (1 + :id % 100);
DELETE FROM child WHERE id = (SELECT min(id) FROM child);
COMMIT;
