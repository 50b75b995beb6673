-- follow_schema.sql: tables exercising every kind of change the stream carries.
CREATE TABLE kv (id bigint PRIMARY KEY, v text NOT NULL, n int NOT NULL DEFAULT 0);
INSERT INTO kv SELECT g, md5(g::text), 0 FROM generate_series(1, 5000) g;
-- a wide TOASTed column that updates leave unchanged
CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, hits int NOT NULL DEFAULT 0);
ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO docs SELECT g, repeat(md5(g::text), 400), 0 FROM generate_series(1, 200) g;
-- replica identity full, no key, duplicate rows
CREATE TABLE full_t (a int, b text);
ALTER TABLE full_t REPLICA IDENTITY FULL;
INSERT INTO full_t SELECT g % 50, 'x' || (g % 50) FROM generate_series(1, 1000) g;
-- partitioned, with rows moving between partitions on update
CREATE TABLE parts (id int, k int NOT NULL, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE parts_0 PARTITION OF parts FOR VALUES FROM (0) TO (50);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (50) TO (100);
INSERT INTO parts SELECT g, g % 100, 'p' FROM generate_series(1, 2000) g;
-- truncated now and then
CREATE TABLE scratch (id serial PRIMARY KEY, v int);
-- no key at all: inserts only
CREATE TABLE log_nokey (at timestamptz DEFAULT now(), msg text);
-- generated column and identity
CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED);
-- a foreign key and a trigger that must not fire on the target
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 100);
CREATE TABLE child (id serial PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE);
CREATE TABLE trig_log (n int);
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO trig_log VALUES (1); RETURN NEW; END $$;
CREATE TRIGGER kv_bump AFTER UPDATE ON kv FOR EACH ROW WHEN (NEW.n % 1000 = 999) EXECUTE FUNCTION bump();
CREATE SEQUENCE kv_new_ids START 10000000;
