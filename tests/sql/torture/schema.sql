-- torture/schema.sql: the fault campaign's tables (tests/t/170_torture.t).
-- acct: keyed; updates, deletes and key changes (id = id + 100000: o is the
-- original id, so a row's ids are o + k * 100000 and never collide)
CREATE TABLE acct (id bigint PRIMARY KEY, o int NOT NULL UNIQUE, bal bigint NOT NULL DEFAULT 0, note text NOT NULL);
INSERT INTO acct SELECT g, g, 0, md5(g::text) FROM generate_series(1, 5000) g;
-- ev: inserts and deletes
CREATE TABLE ev (id bigserial PRIMARY KEY, o int NOT NULL, v text NOT NULL);
INSERT INTO ev (o, v) SELECT g, 'seed' FROM generate_series(1, 2000) g;
-- bulk: 50,000-row transactions (insert, update, key change, delete)
CREATE TABLE bulk (id bigint PRIMARY KEY, c int NOT NULL, v text NOT NULL);
INSERT INTO bulk SELECT g, 0, md5(g::text) FROM generate_series(1, 50000) g;
-- replica identity full, no key, duplicate rows
CREATE TABLE full_t (a int NOT NULL, b text NOT NULL);
ALTER TABLE full_t REPLICA IDENTITY FULL;
INSERT INTO full_t SELECT g % 50, 'x' || (g % 50) FROM generate_series(1, 1000) g;
-- partitioned: updates of k move rows between partitions
CREATE TABLE parts (id int NOT NULL, k int NOT NULL, v text NOT NULL, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
CREATE TABLE parts_0 PARTITION OF parts FOR VALUES FROM (0) TO (50);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (50) TO (100);
CREATE TABLE parts_2 PARTITION OF parts FOR VALUES FROM (100) TO (150);
INSERT INTO parts SELECT g, g % 150, 'p' FROM generate_series(1, 3000) g;
CREATE SEQUENCE parts_new_ids START 1000000;
-- truncated now and then
CREATE TABLE scratch (id serial PRIMARY KEY, v int NOT NULL);
-- no key and no replica identity: inserts only (and truncates)
CREATE TABLE log_nokey (n int NOT NULL, msg text NOT NULL);
