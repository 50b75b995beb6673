-- dataset_many.sql: a many-table database shaped like the ones users move
-- (issue 15), for bench/clone.sh --dataset many. psql variables:
--   tables  how many tables (default 300)
--   scale   rows of the largest table = 100000 * scale (default 1)
-- Table i (1-based) holds about 100000 * scale / i^1.1 rows (a long tail:
-- a few large tables, hundreds of small ones, none empty), spread over four
-- schemas, with 2-5 secondary indexes each (plain, multi-column, expression
-- on jsonb, partial), a jsonb and a text column (every 10th table's text is
-- ~3 kB, so it lives in TOAST), a foreign key to the previous table of its
-- schema for every 4th table, every 25th table partitioned by range (4
-- partitions), every 40th without a primary key. Deterministic: the same
-- variables give the same database. About 85 MB per scale unit at 300 tables.
\if :{?tables}
\else
\set tables 300
\endif
\if :{?scale}
\else
\set scale 1
\endif
SET client_min_messages = warning;
SELECT set_config('bench.tables', :'tables', false), set_config('bench.scale', :'scale', false);
DO $gen$
DECLARE
  ntab int := current_setting('bench.tables')::int;
  scale numeric := current_setting('bench.scale')::numeric;
  schemas text[] := ARRAY['app', 'billing', 'audit', 'catalog'];
  s text;
  t text;
  prev text[] := ARRAY[NULL, NULL, NULL, NULL];
  rows bigint;
  si int;
  nidx int;
  parted bool;
  keyless bool;
  toast bool;
BEGIN
  FOREACH s IN ARRAY schemas LOOP
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);
  END LOOP;
  PERFORM setseed(0.42);
  FOR i IN 1..ntab LOOP
    si := (i - 1) % 4 + 1;
    s := schemas[si];
    t := format('t%s', lpad(i::text, 5, '0'));
    rows := greatest(10, floor(100000 * scale / power(i, 1.1)))::bigint;
    parted := i % 25 = 0;
    keyless := i % 40 = 0 AND NOT parted;
    toast := i % 10 = 3;
    nidx := 2 + i % 4;
    IF parted THEN
      EXECUTE format('CREATE TABLE %I.%I (id bigint NOT NULL, parent_id bigint, created_at timestamptz NOT NULL,'
                     ' status text NOT NULL, amount numeric(12,2), payload jsonb, note text,'
                     ' PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)', s, t);
      FOR p IN 0..3 LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)', s, t || '_p' || p, s, t,
                       timestamptz '2024-01-01' + p * interval '3 months', timestamptz '2024-01-01' + (p + 1) * interval '3 months');
      END LOOP;
    ELSE
      EXECUTE format('CREATE TABLE %I.%I (id bigint %s, parent_id bigint, created_at timestamptz NOT NULL,'
                     ' status text NOT NULL, amount numeric(12,2), payload jsonb, note text)', s, t,
                     CASE WHEN keyless THEN '' ELSE 'PRIMARY KEY' END);
    END IF;
    EXECUTE format(
      'INSERT INTO %I.%I SELECT g, CASE WHEN g %% 3 = 0 THEN NULL ELSE (g %% 1000) + 1 END,'
      '  timestamptz %L + (g %% 365) * interval ''1 day'' + (g %% 86400) * interval ''1 second'','
      '  (ARRAY[''new'', ''paid'', ''shipped'', ''void''])[1 + g %% 4], (g %% 100000) / 100.0,'
      '  jsonb_build_object(''k'', g %% 97, ''tags'', jsonb_build_array(g %% 7, g %% 11), ''name'', md5(g::text)),'
      '  %s'
      '  FROM generate_series(1, %s) g', s, t, '2024-01-01',
      CASE WHEN toast THEN 'repeat(md5(g::text), 100)' ELSE 'md5(g::text)' END, rows);
    -- secondary indexes: 2 to 5
    EXECUTE format('CREATE INDEX ON %I.%I (created_at)', s, t);
    EXECUTE format('CREATE INDEX ON %I.%I (status, amount)', s, t);
    IF nidx >= 3 THEN EXECUTE format('CREATE INDEX ON %I.%I ((payload->>''k''))', s, t); END IF;
    IF nidx >= 4 THEN EXECUTE format('CREATE INDEX ON %I.%I (parent_id) WHERE parent_id IS NOT NULL', s, t); END IF;
    IF nidx >= 5 AND NOT parted THEN EXECUTE format('CREATE INDEX ON %I.%I USING gin (payload)', s, t); END IF;
    -- a foreign key to the previous keyed plain table of this schema (parent ids it lacks become NULL first)
    IF i % 4 = 0 AND prev[si] IS NOT NULL AND NOT parted THEN
      EXECUTE format('UPDATE %I.%I SET parent_id = NULL WHERE parent_id > (SELECT max(id) FROM %s)', s, t, prev[si]);
      EXECUTE format('ALTER TABLE %I.%I ADD FOREIGN KEY (parent_id) REFERENCES %s (id)', s, t, prev[si]);
    END IF;
    IF NOT parted AND NOT keyless THEN
      prev[si] := format('%I.%I', s, t);
    END IF;
  END LOOP;
END
$gen$;
ANALYZE;
