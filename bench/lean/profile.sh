#!/usr/bin/env bash
# Where a lean drain's time goes (bench/PROFILING.md, "W2lean"): the lean
# client (bench/lean/drain.c) drains a backlog on a throwaway cluster with
# pg_stat_statements (track = all: the statements the outbox's functions run
# through SPI show too, nested under the call), and prints, per statement,
# calls, mean and total execution time and its time per 100-event batch, next
# to the drain's wall time per batch. Execution time excludes the commit (WAL
# flush) and the round trip: wall time minus the top-level statements' time
# is what those cost.
#
# Run as the cluster user (not root), with PGBIN the bindir of a PostgreSQL
# installation that has outbox and pg_stat_statements (bench/run.sh leaves
# one in $OUTBOX_WORK/pg):
#   PGBIN=/tmp/work/pg/usr/lib/postgresql/15/bin bash bench/lean/profile.sh DIR PORT [EVENTS] [SYSTEMS] [CONSUMERS]
# DIR is made afresh (the cluster and its socket); the cluster listens on the
# Unix socket only and is stopped at the end.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$(dirname "$here")")
dir=$1 port=$2 events=${3:-100000} systems=${4:-"raw outbox xact"} consumer_counts=${5:-"1 4"}
: "${PGBIN:?PGBIN: the bindir of a PostgreSQL installation with outbox}"
rm -rf "$dir" && mkdir -p "$dir/sock"
export PGHOST="$dir/sock" PGPORT=$port PGDATABASE=bench PGUSER=$(id -un)
psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1)
cc -O2 -pthread -I"$(pg_config --includedir)" -o "$dir/lean-drain" "$here/drain.c" -lpq || exit 1
"$PGBIN/initdb" -D "$dir/data" -A trust -E UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log"; exit 1; }
# The settings of bench/run.sh's cluster, plus pg_stat_statements.
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 50
shared_buffers = 1GB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 8GB
checkpoint_timeout = 30min
track_commit_timestamp = on
shared_preload_libraries = 'outbox, pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
outbox.enabled = off
outbox.databases = 'bench'
outbox.relay_batch_size = 100
log_min_messages = warning
EOF
"$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null || { tail "$dir/server.log"; exit 1; }
trap '"$PGBIN/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1' EXIT
"$PGBIN/createdb" bench
(cd "$src" && "${psql[@]}" -f bench/sql/setup.sql) >"$dir/setup.log" 2>&1 || { cat "$dir/setup.log"; exit 1; }
"${psql[@]}" -c "CREATE EXTENSION pg_stat_statements"
# PgQ, if installed (apt-get install postgresql-15-pgq3): the publisher ticks
# its queues itself, as in bench/run.sh; no pgqd (only maintenance).
[ "$("${psql[@]}" -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgq'")" = 1 ] &&
    "${psql[@]}" -c "CREATE EXTENSION pgq"
for c in $consumer_counts; do
    for s in $systems; do
        [ $s = worker ] && [ $c != 1 ] && continue   # one relay per database
        # The publish runs in the same process before the clock starts: reset
        # the statistics once it is done (the first consumer's connect).
        "${psql[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null
        line=$("$dir/lean-drain" --system "$s" --events "$events" --consumers "$c" --batch 100 --reset-stats-after-publish 1)
        [ -n "$line" ] || { echo "## $s, $c consumer(s): the lean client failed"; continue; }
        secs=$(printf '%s' "$line" | sed -E 's/.*"seconds":([0-9.]+),.*/\1/')
        batches=$(printf '%s' "$line" | sed -E 's/.*"batches":([0-9]+),.*/\1/')
        [ "$batches" -gt 0 ] || batches=$((events / 100))   # the relay: no client, batches of 100
        echo "## $s, $c consumer(s): $(printf '%s' "$line" | sed -E 's/.*"seconds":([0-9.]+),"rate":([0-9.]+),.*"ok":(true|false).*/\1 s, \2 events\/s, ok \3/'); $batches batches, wall $(awk -v s="$secs" -v b="$batches" -v c="$c" 'BEGIN { printf "%.3f", s * 1000 * c / b }') ms per batch per consumer"
        "${psql[@]}" -A -F ' | ' -P footer=off -c "
            SELECT CASE WHEN toplevel THEN '' ELSE '  (nested) ' END || left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement,
                   calls, round(mean_exec_time::numeric, 3) AS mean_ms, round(total_exec_time::numeric, 1) AS total_ms,
                   round((total_exec_time / $batches)::numeric, 3) AS ms_per_batch,
                   shared_blks_hit + shared_blks_read AS buffers, wal_records
              FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'bench') AND calls >= $batches / 2
               AND query NOT LIKE '%pg_stat_statements%'
             ORDER BY toplevel DESC, total_exec_time DESC"
        echo
    done
done
