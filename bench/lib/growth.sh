# W6 (growth of cost): sourced by bench/run.sh, which defines q, psql, pbin,
# bw, series, results, quick, check, ok, notok, skip, log, series_head,
# check_series and plots_wanted. See bench/README.md ("Workloads", W6).
#
# Two databases of the same cluster, both made like "bench" (bench/sql/setup.sql)
# with the same archive partitions: w6_empty (nothing pending, an empty
# archive) and w6_full (W6_PENDING events pending, W6_ARCHIVED in the archive,
# vacuumed and analyzed). In each round, alternating which goes first:
#   publish  pgbench -c 4 -T W6_SECONDS, W1's publishing transaction with
#            events shaped as the fill's (bench/sql/w6_publish.sql: a business
#            row and outbox_publish() with a key on half, a header on a
#            quarter), synchronous_commit on and off (W6_SYNC)
#   claim    pgbench -c 1 -t B, bench/sql/w6_claim.sql: outbox_claim of 100
#            (a lease) then outbox_complete, two transactions per batch; B is
#            what w6_empty's publish phases left pending, in batches of 100:
#            on w6_empty the claims drain that freshly published set, on
#            w6_full they take B batches from the front of its backlog.
# Reported as full/empty ratios of the cost (per-transaction latency; for
# publishing the inverse of the rate) per round, and their median.

# Where a database's counters are, for the per-phase deltas: WAL (the
# cluster's: one phase runs at a time), buffers of the database, autovacuums
# of its outbox_events.
w6_counters() {
    "${psql[@]}" -d "$1" -At -F ' ' -c "SELECT w.wal_bytes, w.wal_fpi, d.blks_hit, d.blks_read,
        t.autovacuum_count, t.n_dead_tup, t.n_live_tup,
        (SELECT count(*) FROM pg_stat_progress_vacuum v WHERE v.datname = current_database() AND v.relid = t.relid)
      FROM pg_stat_wal w, pg_stat_database d, pg_stat_user_tables t
     WHERE d.datname = current_database() AND t.relid = 'outbox_events'::regclass"
}
# w6_delta BEFORE AFTER: the deltas as JSON members (dead and live tuples:
# the values after; vacuuming: autovacuum was at work on the database's
# outbox_events at the start or the end of the phase).
w6_delta() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ");
        printf "\"wal_bytes\":%d,\"wal_fpi\":%d,\"blks_hit\":%d,\"blks_read\":%d,\"autovacuums\":%d,\"dead_tuples\":%d,\"live_tuples\":%d,\"vacuuming\":%s",
            y[1] - x[1], y[2] - x[2], y[3] - x[3], y[4] - x[4], y[5] - x[5], y[6], y[7], (x[8] + y[8] > 0 ? "true" : "false") }'
}

# w6_db DB: a database made like bench, with the archive's partitions for the
# W6_DAYS days before today and today (the DDL outbox_archive_maintain() runs;
# it makes them days ahead, so a long-running system has them), then those it
# makes itself (the next 3 days). The relay is off (outbox.enabled).
w6_db() {
    local db=$1
    "$pbin/dropdb" --if-exists "$db" 2>/dev/null; "$pbin/createdb" "$db" &&
        "${psql[@]}" -d "$db" -f bench/sql/setup.sql >"$bw/w6-setup-$db.log" 2>&1 &&
        "${psql[@]}" -d "$db" >>"$bw/w6-setup-$db.log" 2>&1 <<SQL
DO \$\$
DECLARE day date;
BEGIN
    FOR i IN 0..$W6_DAYS LOOP
        day := (now() AT TIME ZONE 'UTC')::date - i;
        EXECUTE format('CREATE TABLE public.%I PARTITION OF public.outbox_events_archive (PRIMARY KEY (id, completed_on)) '
                       'FOR VALUES FROM (%L) TO (%L)',
                       'outbox_events_archive_p' || to_char(day, 'YYYYMMDD'),
                       day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END
\$\$;
SELECT outbox_archive_maintain();
-- A UUIDv7 of time t (48 bits of Unix ms, version 7, random bits), as
-- outbox_publish() makes its ids: increasing with the publish time.
CREATE FUNCTION w6_uuid7(t timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS \$\$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
               PLACING substring(int8send((extract(epoch FROM t) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
\$\$;
SQL
}

# The rows of the fill look like what outbox_publish() writes: 4 event types,
# bench_payload(n) (~250 bytes of jsonb), half of the events with an ordering
# key (W6_KEYS keys, 'customer-<k>'), a traceparent header on a quarter, the
# rest '{}' (publish's default).
w6_cols="(ARRAY['order.created', 'order.paid', 'order.shipped', 'customer.updated'])[1 + n % 4] AS type,
       bench_payload(n) AS payload,
       CASE WHEN n % 4 = 1 THEN jsonb_build_object('traceparent', '00-' || md5(n::text) || '-' || left(md5((n + 1)::text), 16) || '-01')
            ELSE '{}'::jsonb END AS headers,
       CASE WHEN n % 2 = 0 THEN 'customer-' || (n / 2 % $W6_KEYS) END AS ordering_key"

# w6_fill_pending: W6_PENDING events published over the 2 hours before now
# (created_on = occurred_at = available_at, UUIDv7 ids of that time, seq after
# the archive's), in chunks of 1,000,000 (one transaction each).
w6_fill_pending() {
    local n=$W6_PENDING chunk=1000000 a b
    q_full "SELECT setval(pg_get_serial_sequence('outbox_events', 'seq'), $W6_ARCHIVED)" >/dev/null
    for ((a = 1; a <= n; a += chunk)); do
        b=$((a + chunk - 1)); [ $b -gt $n ] && b=$n
        q_full "SET synchronous_commit = off;
INSERT INTO outbox_events (id, type, payload, headers, ordering_key, occurred_at, created_on, available_at)
SELECT w6_uuid7(t), type, payload, headers, ordering_key, t, t, t
  FROM (SELECT t, $w6_cols
          FROM (SELECT n, now() - interval '2 hours' + make_interval(secs => n * 7200.0 / $n) AS t
                  FROM generate_series($a, $b) n) s) r" || return 1
    done
}

# w6_fill_archive: W6_ARCHIVED events delivered (status completed) spread
# evenly from the start of the oldest partition's day to 2 hours ago,
# inserted through the parent (each row lands in its day's partition):
# published 20 ms before completion; half settled by a consumer (lease_owner
# bench-<k>), half by the relay to a SQL subscription (deliveries as the relay
# records them).
w6_fill_archive() {
    local n=$W6_ARCHIVED chunk=1000000 a b
    local t0="((now() AT TIME ZONE 'UTC')::date - $W6_DAYS)::timestamp AT TIME ZONE 'UTC'"
    local span="extract(epoch FROM now() - interval '2 hours' - ($t0))"
    for ((a = 1; a <= n; a += chunk)); do
        b=$((a + chunk - 1)); [ $b -gt $n ] && b=$n
        q_full "SET synchronous_commit = off;
INSERT INTO outbox_events_archive (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,
                                   retry_count, last_error, started_on, completed_on, lease_owner, deliveries)
SELECT w6_uuid7(t), n, type, payload, headers, ordering_key, 'completed', t, t, 0, NULL,
       t + interval '15 ms', t + interval '20 ms',
       CASE WHEN n % 2 = 0 THEN 'outbox relay' ELSE 'bench-' || n % 4 END,
       CASE WHEN n % 2 = 0 THEN jsonb_build_object('bench_sql', jsonb_build_object('status', 'completed', 'attempts', 1,
                                                   'completed_on', t + interval '20 ms')) END
  FROM (SELECT n, t, $w6_cols
          FROM (SELECT n, $t0 + make_interval(secs => n * $span / $n) AS t
                  FROM generate_series($a, $b) n) s) r" || return 1
    done
}
q_full() { "${psql[@]}" -d w6_full -At -c "$1"; }

# w6_sizes DB: one JSON line of its sizes (bytes) and counts.
w6_sizes() {
    "${psql[@]}" -d "$1" -At -c "SELECT json_build_object('workload', 'W6sizes', 'db', current_database(),
        'pending', (SELECT count(*) FROM outbox_events),
        'archived', (SELECT count(*) FROM outbox_events_archive),
        'events_table', pg_table_size('outbox_events'),
        'events_indexes', pg_indexes_size('outbox_events'),
        'indexes', (SELECT json_object_agg(c.relname, pg_relation_size(c.oid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                     WHERE i.indrelid = 'outbox_events'::regclass),
        'archive_table', (SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('outbox_events_archive')),
        'archive_indexes', (SELECT sum(pg_indexes_size(relid)) FROM pg_partition_tree('outbox_events_archive')),
        'archive_partitions', (SELECT count(*) FROM pg_partition_tree('outbox_events_archive') WHERE isleaf),
        'archive_today', (SELECT count(*) FROM outbox_events_archive
                           WHERE completed_on >= (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC'))"
}

# w6_pgbench DB ARGS...: run pgbench on DB, its output in $bw/w6-pgbench.out.
w6_pgbench() {
    local db=$1; shift
    "$pbin/pgbench" -n -M prepared "$@" "$db" >"$bw/w6-pgbench.out" 2>&1
}
w6_tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$bw/w6-pgbench.out"; }
w6_lat() { sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$bw/w6-pgbench.out"; }
w6_done() { sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$bw/w6-pgbench.out"; }
# w6_stmt N: the average latency (ms) of the script's N-th statement (pgbench -r).
w6_stmt() {
    awk -v k="$1" '/^statement latencies/ { on = 1; next } on && $1 ~ /^[0-9.]+$/ { if (++i == k) { v = $1; exit } }
        END { print (v == "" ? "null" : v) }' "$bw/w6-pgbench.out"
}

# w6_explain DB: one claim + complete and one publish with auto_explain
# (ANALYZE, BUFFERS, the statements inside the functions), the plans as
# notices, into $bw/w6-explain-DB.txt; none of them is counted.
w6_explain() {
    "${psql[@]}" -d "$1" >"$bw/w6-explain-$1.txt" 2>&1 <<'SQL'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_level = notice;
\echo ==== claim (outbox_claim of 100, lease), the first call of the session
SELECT array_agg(id) AS ids, min(lease_token) AS token FROM outbox_claim(100, NULL, 'w6-explain') \gset
\echo ==== complete
SELECT outbox_complete(:'ids', :token);
\echo ==== claim again, twice (the plan the session keeps)
SELECT array_agg(id) AS ids, min(lease_token) AS token FROM outbox_claim(100, NULL, 'w6-explain') \gset
SELECT outbox_complete(:'ids', :token);
SELECT array_agg(id) AS ids, min(lease_token) AS token FROM outbox_claim(100, NULL, 'w6-explain') \gset
SELECT outbox_complete(:'ids', :token);
\echo ==== publish
BEGIN;
INSERT INTO orders (customer_id, amount, status) VALUES (1, 13.70, 'new');
SELECT outbox_publish('order.shipped', bench_payload(2), 'customer-1') IS NOT NULL AS published;
COMMIT;
SQL
}

w6() {
    local modes=$W6_SYNC dbs db r mode before after line t0 t1
    log "W6 growth of cost: ${W6_PENDING} events pending and ${W6_ARCHIVED} archived (w6_full) against an empty outbox (w6_empty), ${W6_ROUNDS} rounds: publish (pgbench -c 4, ${W6_SECONDS} s, synchronous_commit ${modes// /, }), claim + complete of 100 (pgbench -c 1)"
    for db in w6_empty w6_full; do
        w6_db $db || { cat "$bw/w6-setup-$db.log"; notok "W6: create database $db"; return; }
    done
    # The fill: INSERT ... SELECT as the extension's owner (the benchmark
    # runs as the cluster's superuser), both tables at once (2 sessions).
    t0=$(date +%s.%N)
    w6_fill_pending >"$bw/w6-fill-pending.log" 2>&1 &
    local fp=$!
    w6_fill_archive >"$bw/w6-fill-archive.log" 2>&1
    local ra=$?
    wait $fp; local rp=$?
    t1=$(date +%s.%N)
    if [ $rp != 0 ] || [ $ra != 0 ]; then cat "$bw/w6-fill-pending.log" "$bw/w6-fill-archive.log"; notok "W6: fill w6_full"; return; fi
    local fill_s vac_s
    fill_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    # What autovacuum would have done on a system that ran long enough.
    t0=$(date +%s.%N)
    q_full "VACUUM (ANALYZE) outbox_events" && q_full "VACUUM (ANALYZE) outbox_events_archive" &&
        "${psql[@]}" -d w6_empty -At -c "VACUUM (ANALYZE) outbox_events" -c "VACUUM (ANALYZE) outbox_events_archive" &&
        q_full "CHECKPOINT" || { notok "W6: vacuum after the fill"; return; }
    t1=$(date +%s.%N)
    vac_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    local sizes_full sizes_empty
    sizes_full=$(w6_sizes w6_full); sizes_empty=$(w6_sizes w6_empty)
    echo "{\"workload\":\"W6fill\",\"method\":\"INSERT ... SELECT\",\"pending\":$W6_PENDING,\"archived\":$W6_ARCHIVED,\"days\":$W6_DAYS,\"keys\":$W6_KEYS,\"fill_seconds\":$fill_s,\"vacuum_seconds\":$vac_s}" >>"$results"
    echo "${sizes_full%\}}, \"when\" : \"after the fill\"}" >>"$results"
    echo "${sizes_empty%\}}, \"when\" : \"after the fill\"}" >>"$results"
    local pend arch
    pend=$(printf '%s' "$sizes_full" | sed -n 's/.*"pending" : \([0-9]*\).*/\1/p')
    arch=$(printf '%s' "$sizes_full" | sed -n 's/.*"archived" : \([0-9]*\).*/\1/p')
    check "W6: w6_full filled in $fill_s s (vacuum analyze and checkpoint $vac_s s): $pend events pending, $arch archived in $(printf '%s' "$sizes_full" | sed -n 's/.*"archive_partitions" : \([0-9]*\).*/\1/p') partitions" \
        test "$pend" = "$W6_PENDING" -a "$arch" = "$W6_ARCHIVED"
    [ "$pend" = "$W6_PENDING" ] || return

    local load_before claims_total=0 bad=0
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    : >"$series/w6-rounds.rows"
    for r in $(seq 1 "$W6_ROUNDS"); do
        dbs="w6_empty w6_full"; [ $((r % 2)) = 0 ] && dbs="w6_full w6_empty"
        declare -A pub=() lat=()
        for mode in $modes; do
            for db in $dbs; do
                before=$(w6_counters $db)
                PGOPTIONS="-c synchronous_commit=$mode" w6_pgbench $db -c 4 -j 2 -T "$W6_SECONDS" -D keys="$W6_KEYS" -f bench/sql/w6_publish.sql ||
                    { cat "$bw/w6-pgbench.out"; notok "W6: publish on $db"; bad=1; continue; }
                after=$(w6_counters $db)
                pub[$db.$mode]=$(w6_tps); lat[$db.$mode]=$(w6_lat)
                echo "{\"workload\":\"W6publish\",\"db\":\"$db\",\"sync\":\"$mode\",\"round\":$r,\"tps\":${pub[$db.$mode]:-0},\"latency_ms\":${lat[$db.$mode]:-0},\"transactions\":$(w6_done),$(w6_delta "$before" "$after"),\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\"}" >>"$results"
                [ $quick = 1 ] || echo "   round $r, publish, synchronous_commit=$mode, $db: ${pub[$db.$mode]} tps, ${lat[$db.$mode]} ms"
            done
        done
        # The claims: what w6_empty has pending, in batches of 100.
        local batches
        batches=$(( $("${psql[@]}" -d w6_empty -At -c "SELECT count(*) FROM outbox_events") / 100 ))
        [ $batches -gt 0 ] || { notok "W6: nothing to claim on w6_empty in round $r"; bad=1; continue; }
        for db in $dbs; do
            before=$(w6_counters $db)
            w6_pgbench $db -c 1 -t "$batches" -r -f bench/sql/w6_claim.sql ||
                { cat "$bw/w6-pgbench.out"; notok "W6: claim on $db"; bad=1; continue; }
            after=$(w6_counters $db)
            lat[$db.claim]=$(w6_lat)
            echo "{\"workload\":\"W6claim\",\"db\":\"$db\",\"round\":$r,\"batches\":$batches,\"done\":$(w6_done),\"latency_ms\":${lat[$db.claim]:-0},\"claim_ms\":$(w6_stmt 1),\"complete_ms\":$(w6_stmt 2),\"tps\":$(w6_tps),$(w6_delta "$before" "$after"),\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\"}" >>"$results"
            [ $quick = 1 ] || echo "   round $r, claim + complete of 100, $db: ${lat[$db.claim]} ms per batch ($(w6_stmt 1) + $(w6_stmt 2)), $batches batches"
        done
        claims_total=$((claims_total + batches))
        # The series: per round, the cost ratios full/empty.
        local row="$r"
        for mode in on off; do
            row="$row $(awk -v e="${pub[w6_empty.$mode]:-}" -v f="${pub[w6_full.$mode]:-}" 'BEGIN { if (e > 0 && f > 0) printf "%.4f", e / f; else printf "NaN" }')"
        done
        row="$row $(awk -v e="${lat[w6_empty.claim]:-}" -v f="${lat[w6_full.claim]:-}" 'BEGIN { if (e > 0 && f > 0) printf "%.4f", f / e; else printf "NaN" }')"
        row="$row ${lat[w6_empty.claim]:-NaN} ${lat[w6_full.claim]:-NaN} ${pub[w6_empty.on]:-NaN} ${pub[w6_full.on]:-NaN} ${pub[w6_empty.off]:-NaN} ${pub[w6_full.off]:-NaN}"
        echo "$row" >>"$series/w6-rounds.rows"
        unset pub lat
    done
    local load_after
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)

    # Every claim took 100 events and completed them: the archive has them.
    local got_e got_f
    got_e=$("${psql[@]}" -d w6_empty -At -c "SELECT count(*) FROM outbox_events_archive WHERE lease_owner = 'w6'")
    got_f=$("${psql[@]}" -d w6_full -At -c "SELECT count(*) FROM outbox_events_archive WHERE completed_on > now() - interval '1 day' AND lease_owner = 'w6'")
    check "W6: every claim completed 100 events ($got_e on w6_empty, $got_f on w6_full; want $((claims_total * 100)) each)" \
        test "$bad" = 0 -a "$got_e" = $((claims_total * 100)) -a "$got_f" = $((claims_total * 100))

    # The ratios (median of the rounds'), against the target.
    local summary
    summary=$(awk '{ for (i = 2; i <= 4; i++) if ($i != "NaN") v[i, ++n[i]] = $i }
        function med(i,   k, j, t, m) { m = n[i]; if (m == 0) return "NaN";
            for (k = 1; k <= m; k++) a[k] = v[i, k];
            for (k = 1; k <= m; k++) for (j = k + 1; j <= m; j++) if (a[j] < a[k]) { t = a[k]; a[k] = a[j]; a[j] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END { printf "%s %s %s", med(2), med(3), med(4) }' "$series/w6-rounds.rows")
    local r_on r_off r_claim
    read -r r_on r_off r_claim <<<"$summary"
    echo "{\"workload\":\"W6ratio\",\"publish_on\":${r_on/NaN/null},\"publish_off\":${r_off/NaN/null},\"claim\":${r_claim/NaN/null},\"rounds\":$W6_ROUNDS,\"seconds\":$W6_SECONDS,\"claim_batches\":$claims_total,\"load_before\":\"$load_before\",\"load_after\":\"$load_after\"}" >>"$results"
    log "W6: cost full/empty (median of $W6_ROUNDS rounds): publish $r_on (synchronous_commit on), $r_off (off); claim + complete $r_claim; target <= 1.2; load average $load_before -> $load_after"
    {
        echo "# workload W6"
        echo "# pending $W6_PENDING"
        echo "# archived $W6_ARCHIVED"
        echo "# rounds $W6_ROUNDS"
        echo "# publish_on $r_on"
        echo "# publish_off $r_off"
        echo "# claim $r_claim"
        echo "# date $(date -u +%FT%TZ)"
        echo "# columns round publish_on_ratio publish_off_ratio claim_ratio claim_ms_empty claim_ms_full tps_on_empty tps_on_full tps_off_empty tps_off_full"
        cat "$series/w6-rounds.rows"
    } >"$series/w6-rounds.dat"
    rm -f "$series/w6-rounds.rows"
    if [ "$W6_ROUNDS" -ge 2 ]; then
        check_series "W6: ratios per round" "$series/w6-rounds.dat" && plots_wanted+=(w6-ratios)
    fi

    # Where the time goes: plans with buffers, sizes after the rounds (300
    # events published first, so that w6_empty has batches to claim).
    for db in w6_empty w6_full; do
        "${psql[@]}" -d $db -At -c "SET outbox.require_transaction = off" \
            -c "SELECT count(outbox_publish('order.created', bench_payload(n), CASE WHEN n % 2 = 0 THEN 'customer-' || (n / 2 % $W6_KEYS) END)) FROM generate_series(1, 300) n" >/dev/null
        w6_explain $db
        line=$(w6_sizes $db); echo "${line%\}}, \"when\" : \"after the rounds\"}" >>"$results"
    done
    check "W6: plans of claim, complete and publish kept (auto_explain) in $bw/w6-explain-{w6_empty,w6_full}.txt" \
        grep -q "Query Text" "$bw/w6-explain-w6_full.txt"
    [ $quick = 1 ] || echo "{\"workload\":\"W6cmd\",\"cmd\":\"PGOPTIONS='-c synchronous_commit=on|off' pgbench -n -M prepared -c 4 -j 2 -T $W6_SECONDS -D keys=$W6_KEYS -f bench/sql/w6_publish.sql w6_empty|w6_full; pgbench -n -M prepared -c 1 -t BATCHES -r -f bench/sql/w6_claim.sql w6_empty|w6_full\"}" >>"$results"
    if [ "${W6_KEEP:-0}" = 1 ]; then
        log "W6: databases w6_empty and w6_full kept (W6_KEEP=1)"
    else
        "$pbin/dropdb" w6_full && "$pbin/dropdb" w6_empty
    fi
}
