#!/usr/bin/env bash
# Where W6's claims spend their time (bench/PROFILING.md, "W6"). Run as the
# cluster's user after `W6_KEEP=1 bench/run.sh --only W6`, on the cluster it
# left (databases w6_empty and w6_full):
#
#   runuser -u postgres -- bash bench/lib/w6-profile.sh /tmp/work_growth 5651 [BATCHES]
#
# Starts that cluster with pg_stat_statements (track = all: the statements
# inside outbox_claim and outbox_complete too) and autovacuum off, then for
# each database, twice (A: right after a VACUUM of outbox_events; B: with the
# dead rows that A's claims left):
#   - on w6_empty, publishes BATCHES x 100 events shaped as the fill's
#     (bench/sql/w6_publish.sql, synchronous_commit off; not measured);
#   - CHECKPOINT, pg_stat_statements_reset(), then pgbench -c 1 -t BATCHES of
#     bench/sql/w6_claim.sql with a per-transaction log (-l);
#   - prints the latency per batch by tenths of the run, and per statement:
#     calls, mean ms, shared buffers hit + read, WAL bytes and full-page
#     images per call; the claim index's size and the dead rows.
# Then EXPLAIN (ANALYZE, BUFFERS) of the claim's candidate scan in each, and
# VACUUM (VERBOSE) of outbox_events in each, timed, with the dead rows left.
# Leaves the cluster stopped, with autovacuum back on. Prints a report.
set -uo pipefail
work=${1:?work folder}; port=${2:?port}; batches=${3:-2000}
bw=$work/bench; data=$bw/data; pbin=$(dirname "$(find "$work/pg" -name pg_ctl -type f | head -n 1)")
src=$work/src
export PGHOST=$bw/sock PGPORT=$port
psql=("$pbin/psql" -X -q -v ON_ERROR_STOP=1)
q() { "${psql[@]}" -d "$1" -At -c "$2"; }
cat >>"$data/postgresql.auto.conf" <<EOF
shared_preload_libraries = 'outbox,pg_stat_statements'
pg_stat_statements.track = all
autovacuum = off
EOF
"$pbin/pg_ctl" -D "$data" -l "$bw/profile.log" -w start >/dev/null || { tail "$bw/profile.log"; exit 1; }
trap 'sed -i "/^shared_preload_libraries = .outbox,pg_stat_statements.$/d; /^pg_stat_statements.track/d; /^autovacuum = off$/d" "$data/postgresql.auto.conf"; "$pbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null' EXIT
tmp=$(mktemp -d)
for db in w6_empty w6_full; do
    q $db "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
done
for pass in A B; do
    for db in w6_empty w6_full; do
        [ $pass = A ] && q $db "VACUUM outbox_events"
        if [ $db = w6_empty ]; then
            PGOPTIONS="-c synchronous_commit=off" "$pbin/pgbench" -n -M prepared -c 2 -j 2 -t $((batches * 50)) -D keys=1000 \
                -f "$src/bench/sql/w6_publish.sql" $db >/dev/null 2>&1
        fi
        q $db "CHECKPOINT"
        dead0=$(q $db "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass")
        q $db "SELECT pg_stat_statements_reset()" >/dev/null
        (cd "$tmp" && rm -f pgbench_log.* && "$pbin/pgbench" -n -M prepared -c 1 -t "$batches" -l -f "$src/bench/sql/w6_claim.sql" $db >"$tmp/out" 2>&1) ||
            { cat "$tmp/out"; exit 1; }
        echo "== pass $pass ($([ $pass = A ] && echo 'after VACUUM' || echo "with the dead rows of pass A")), $db: $batches batches of claim + complete, $(sed -n 's/^latency average = //p' "$tmp/out") per batch; dead rows at the start $dead0, at the end $(q $db "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass")"
        # pgbench -l: client transaction latency_us script_no epoch us; by tenths of the run.
        awk -v n="$batches" '{ k = int((NR - 1) * 10 / n); s[k] += $3; c[k]++ }
            END { printf "   ms per batch by tenth of the run:"; for (k = 0; k < 10; k++) printf " %.2f", s[k] / c[k] / 1000; print "" }' "$tmp"/pgbench_log.*
        "${psql[@]}" -d $db -F ' | ' -A -c "SELECT calls, round(mean_exec_time::numeric, 3) AS mean_ms,
                round(((shared_blks_hit + shared_blks_read)::numeric / calls), 1) AS buffers,
                round((shared_blks_read::numeric / calls), 1) AS read,
                round((wal_bytes / calls)::numeric) AS wal_bytes, round((wal_fpi::numeric / calls), 2) AS fpi,
                regexp_replace(left(query, 70), '\s+', ' ', 'g') AS statement
              FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND calls >= $batches ORDER BY total_exec_time DESC LIMIT 6" | sed 's/^/   /'
    done
done
for db in w6_empty w6_full; do
    [ $db = w6_empty ] && PGOPTIONS="-c synchronous_commit=off" "$pbin/pgbench" -n -M prepared -c 1 -t 500 -D keys=1000 \
        -f "$src/bench/sql/w6_publish.sql" $db >/dev/null 2>&1
    echo "== $db: the claim's candidate scan (the generic plan's shape), EXPLAIN (ANALYZE, BUFFERS); claim index $(q $db "SELECT pg_size_pretty(pg_relation_size('outbox_events_claim_idx'))"), dead rows $(q $db "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass")"
    "${psql[@]}" -d $db -A -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
        SELECT e.id FROM outbox_events e
         WHERE e.status = ANY ('{created,active}'::outbox_status[]) AND e.dispatched_at IS NULL
           AND e.available_at <= statement_timestamp()
           AND (e.ordering_key IS NULL OR NOT EXISTS (SELECT FROM outbox_events p WHERE p.ordering_key = e.ordering_key AND p.seq < e.seq))
         ORDER BY e.available_at, e.seq LIMIT 100 FOR UPDATE OF e SKIP LOCKED" | sed 's/^/   /'
done
# What a vacuum of outbox_events costs in each, with the dead rows left.
for db in w6_empty w6_full; do
    t0=$(date +%s.%N)
    "${psql[@]}" -d $db -c "VACUUM (VERBOSE) outbox_events" 2>"$tmp/vac"
    t1=$(date +%s.%N)
    echo "== $db: VACUUM outbox_events took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
    grep -E 'index scans|pages:|tuples:|index "|elapsed|system usage' "$tmp/vac" | sed 's/^/   /'
done
rm -rf "$tmp"
