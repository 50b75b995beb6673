#!/usr/bin/env bash
# Red team: REPLICA IDENTITY USING INDEX on a unique index that is not the
# primary key. Updates that change the primary key but not the identity,
# and the identity but not the primary key; plain updates held in a batch.
# Applied exactly, nothing counted as unmatched?
. "$(dirname "$0")/../lib/tap.sh"
. "$(dirname "$0")/../lib/pg.sh"

follow_servers
q source "CREATE TABLE u (id int PRIMARY KEY, email text NOT NULL, v text);
          CREATE UNIQUE INDEX u_email ON u (email);
          ALTER TABLE u REPLICA IDENTITY USING INDEX u_email;
          INSERT INTO u SELECT g, 'e' || g, 'v' FROM generate_series(1, 200) g" >/dev/null
F=("$FERRY" --source "$SOURCE_CONN" --target "$TARGET_CONN")
start_following
q source "UPDATE u SET v = 'plain' WHERE id <= 50" >/dev/null
q source "UPDATE u SET id = id + 1000 WHERE id BETWEEN 51 AND 80" >/dev/null
q source "UPDATE u SET email = 'new' || id WHERE id BETWEEN 81 AND 110" >/dev/null
q source "BEGIN; UPDATE u SET v = 'a' WHERE id BETWEEN 111 AND 140; UPDATE u SET id = id + 2000 WHERE id BETWEEN 111 AND 140; UPDATE u SET v = 'b' WHERE id > 2000; COMMIT" >/dev/null
q source "DELETE FROM u WHERE id BETWEEN 141 AND 150 OR id BETWEEN 1051 AND 1055" >/dev/null
q source "INSERT INTO kv VALUES (-1, 'probe', 0)" >/dev/null
wait_applied ferry 60; ok $? "applied"
sleep 2
is "$(db_checksum target | grep '^public.u|')" "$(db_checksum source | grep '^public.u|')" "u identical on source and target"
is "$(q target "SELECT COALESCE(sum(changes), 0) FROM ferry.unmatched" 2>/dev/null)" 0 "nothing counted as unmatched"
stop_cleanly
done_testing
