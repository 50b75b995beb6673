-- a row deleted and another put back (under its original id if it is free)
\set o random(1, 5000)
\set o2 random(1, 5000)
BEGIN;
DELETE FROM acct WHERE o = :o;
INSERT INTO acct VALUES (:o2, :o2, 0, 'back') ON CONFLICT DO NOTHING;
COMMIT;
