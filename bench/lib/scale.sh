# W5 (capacity) and W7 (many databases): sourced by bench/run.sh, which
# defines q, psql, pbin, bw, series, results, quick, check, ok, notok, skip,
# log, relay, series_head, check_series, latency_copy and plots_wanted.
# See bench/README.md ("Workloads") for what they measure.

# w5_sample: "seconds backlog delivered" of database bench now (delivered:
# the relay's counter in outbox_worker_stats(), since the server started).
w5_sample() {
    q "SELECT (SELECT count(*) FROM outbox_events), coalesce((SELECT delivered FROM outbox_worker_stats() WHERE database = current_database()), 0)" |
        tr '|' ' '
}

# w5_relay_sched: "cpu_ns runqueue_wait_ns" of bench's relay (/proc/PID/schedstat).
w5_relay_sched() {
    local pid
    pid=$(q "SELECT pid FROM outbox_worker_stats() WHERE database = current_database()")
    [ -n "$pid" ] && [ -r "/proc/$pid/schedstat" ] && cut -d' ' -f1,2 "/proc/$pid/schedstat" || echo "0 0"
}
# w5_sched_line A B T0 T1: the relay's CPU and run-queue wait as % of the wall
# time between two w5_relay_sched samples, as JSON members.
w5_sched_json() {
    awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" -v t0="$5" -v t1="$6" \
        'BEGIN { w = (t1 - t0) * 1e9; printf "\"relay_cpu_pct\":%.1f,\"relay_runqueue_wait_pct\":%.1f", 100 * (c - a) / w, 100 * (d - b) / w }'
}

# pct FILE P: the P-th percentile (0-100) of the numbers in FILE, one a line
# (linear interpolation, as percentile_cont).
pct() {
    sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
        if (NR == 0) { print "null"; exit }
        x = 1 + (NR - 1) * p / 100; i = int(x); f = x - i
        printf "%.3f\n", (i < NR ? v[i] + f * (v[i + 1] - v[i]) : v[NR]) }'
}

###############################################################################
# W5: capacity. pgbench -c W5_CLIENTS unthrottled (the W3 publish script)
# while the relay delivers to a SQL handler: the commit rate, and the backlog
# sampled over the run (bounded: the slope of its second half ~0, small at
# the end). Then at 80 % of that rate (pgbench -R): commit -> handler latency
# as W3 measures it. For synchronous_commit on and off.
###############################################################################
w5() {
    if [ "$have_subscriptions" = 0 ]; then
        skip "W5 capacity: the installed outbox has no subscription API (outbox_subscribe)"
        return
    fi
    log "W5 capacity: pgbench -c $W5_CLIENTS unthrottled for $W5_SECONDS s with the relay delivering, then ${W5_SHARE} % of that rate; synchronous_commit on and off"
    local mode
    for mode in on off; do
        relay off
        q "TRUNCATE orders, bench_handled, outbox_events, outbox_events_archive"
        q "DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'"
        q "SELECT outbox_subscribe('bench_w5', 'order.*', 'bench_record')" >/dev/null
        q "VACUUM ANALYZE outbox_events"
        q "CHECKPOINT"
        relay on
        sleep 1

        # 1. Capacity: unthrottled; the backlog and the relay's counter every 0.5 s.
        local d0 t0 now b d s0 s1
        read -r b d0 <<<"$(w5_sample)"
        s0=$(w5_relay_sched)
        t0=$(date +%s.%N)
        : >"$series/w5-backlog-$mode.rows"
        PGOPTIONS="-c synchronous_commit=$mode" "$pbin/pgbench" -n -M prepared -c "$W5_CLIENTS" -j 2 -T "$W5_SECONDS" \
            -f bench/sql/w3_publish.sql bench >"$bw/w5-capacity-$mode.log" 2>&1 &
        local pgb=$!
        while kill -0 $pgb 2>/dev/null; do
            read -r b d <<<"$(w5_sample)"
            now=$(date +%s.%N)
            echo "$now $b $((d - d0))" >>"$series/w5-backlog-$mode.rows"
            sleep 0.5
        done
        wait $pgb || { cat "$bw/w5-capacity-$mode.log"; notok "W5 capacity publishers (pgbench, synchronous_commit=$mode)"; }
        local t_end end_backlog
        t_end=$(date +%s.%N)
        s1=$(w5_relay_sched)
        read -r end_backlog d <<<"$(w5_sample)"
        echo "$t_end $end_backlog $((d - d0))" >>"$series/w5-backlog-$mode.rows"
        # After the publishers: how long the relay takes to empty the outbox.
        local i drain_s left
        for i in $(seq 1 1200); do
            left=$(q "SELECT count(*) FROM outbox_events")
            [ "$left" = 0 ] && break
            sleep 0.1
        done
        drain_s=$(awk -v a="$t_end" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
        local tps published handled distinct
        tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$bw/w5-capacity-$mode.log")
        tps=${tps:-0}
        published=$(q "SELECT count(*) FROM orders"); handled=$(q "SELECT count(*) FROM bench_handled")
        distinct=$(q "SELECT count(DISTINCT n) FROM bench_handled")
        # The backlog's least-squares slope (events/s) over the second half
        # of the run, its largest value, and the samples as a series.
        local stats max_backlog slope
        stats=$(awk -v t0="$t0" '{ t = $1 - t0; n++; tt[n] = t; bb[n] = $2; if ($2 > m) m = $2 }
            END { h = tt[n] / 2; for (i = 1; i <= n; i++) if (tt[i] >= h) { k++; sx += tt[i]; sy += bb[i]; sxx += tt[i] * tt[i]; sxy += tt[i] * bb[i] }
                  s = (k > 1 && k * sxx - sx * sx > 0) ? (k * sxy - sx * sy) / (k * sxx - sx * sx) : 0
                  printf "%d %.1f\n", m, s }' "$series/w5-backlog-$mode.rows")
        read -r max_backlog slope <<<"$stats"
        # Bounded: at the end less than a second's commits behind, and the
        # second half's slope under 1 % of the commit rate.
        local bounded
        bounded=$(awk -v e="$end_backlog" -v s="$slope" -v r="$tps" 'BEGIN { print (r > 0 && e <= r && s <= 0.01 * r) ? "true" : "false" }')
        local line
        line="{\"workload\":\"W5capacity\",\"sync\":\"$mode\",\"clients\":$W5_CLIENTS,\"seconds\":$W5_SECONDS,\"tps\":$tps,\"published\":$published,\"handled\":$handled,\"distinct_handled\":$distinct,\"left\":$left,\"max_backlog\":$max_backlog,\"end_backlog\":$end_backlog,\"slope_per_s\":$slope,\"drain_after_s\":$drain_s,\"bounded\":$bounded,$(w5_sched_json $s0 $s1 "$t0" "$t_end")}"
        echo "$line" >>"$results"
        {
            series_head "$line" workload sync clients seconds tps max_backlog end_backlog slope_per_s bounded
            echo "# columns t backlog delivered"
            awk -v t0="$t0" '{ printf "%.3f %d %d\n", $1 - t0, $2, $3 }' "$series/w5-backlog-$mode.rows"
        } >"$series/w5-backlog-$mode.dat"
        rm -f "$series/w5-backlog-$mode.rows"
        check "W5 capacity, synchronous_commit=$mode: $published committed at $tps tps by $W5_CLIENTS clients, every one handled once ($handled, $distinct distinct, $left left); backlog max $max_backlog, at the end $end_backlog, slope of the second half $slope events/s: $([ "$bounded" = true ] && echo bounded || echo NOT bounded); emptied ${drain_s} s after; the relay used $(w5_sched_json $s0 $s1 "$t0" "$t_end" | tr -d '"')" \
            test "$published" -gt 0 -a "$published" = "$handled" -a "$handled" = "$distinct" -a "$left" = 0

        # 2. Latency at W5_SHARE % of that rate.
        local rate
        rate=$(awk -v t="$tps" -v s="$W5_SHARE" 'BEGIN { r = int(t * s / 100); print (r < 1 ? 1 : r) }')
        relay off
        q "TRUNCATE orders, bench_handled, outbox_events, outbox_events_archive"
        q "VACUUM ANALYZE outbox_events"
        q "CHECKPOINT"
        relay on
        sleep 1
        s0=$(w5_relay_sched); t0=$(date +%s.%N)
        PGOPTIONS="-c synchronous_commit=$mode" "$pbin/pgbench" -n -M prepared -c "$W5_CLIENTS" -j 2 -R "$rate" -T "$W5_SECONDS" \
            -f bench/sql/w3_publish.sql bench >"$bw/w5-latency-$mode.log" 2>&1 &
        pgb=$!
        local lat_max_backlog=0
        while kill -0 $pgb 2>/dev/null; do
            b=$(q "SELECT count(*) FROM outbox_events")
            [ "${b:-0}" -gt $lat_max_backlog ] && lat_max_backlog=$b
            sleep 0.2
        done
        wait $pgb || { cat "$bw/w5-latency-$mode.log"; notok "W5 latency publishers (pgbench -R $rate, synchronous_commit=$mode)"; }
        s1=$(w5_relay_sched); t_end=$(date +%s.%N)
        for i in $(seq 1 600); do
            [ "$(q "SELECT count(*) FROM outbox_events")" = 0 ] && break
            sleep 0.1
        done
        local inner="SELECT pg_xact_commit_timestamp(o.xmin) AS c, extract(epoch FROM h.handled_at - pg_xact_commit_timestamp(o.xmin)) * 1000 AS ms FROM orders o JOIN bench_handled h ON h.n = o.id"
        line=$(q "SELECT json_build_object('workload', 'W5latency', 'sync', '$mode', 'clients', $W5_CLIENTS, 'share', $W5_SHARE,
                      'capacity_tps', $tps, 'rate', $rate, 'seconds', $W5_SECONDS,
                      'published', (SELECT count(*) FROM orders),
                      'handled', (SELECT count(*) FROM bench_handled),
                      'distinct_handled', (SELECT count(DISTINCT n) FROM bench_handled),
                      'left', (SELECT count(*) FROM outbox_events),
                      'events', count(*),
                      'p50_ms', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3),
                      'p99_ms', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 3),
                      'max_ms', round(max(ms)::numeric, 3),
                      'max_backlog', $lat_max_backlog)
                    FROM ($inner) x")
        line="${line%\}},$(w5_sched_json $s0 $s1 "$t0" "$t_end")}"
        echo "$line" >>"$results"
        {
            series_head "$line" workload sync rate seconds events p50_ms p99_ms max_ms
            echo "# columns t ms"
            q "COPY $(latency_copy "$inner") TO STDOUT WITH (DELIMITER ' ')"
        } >"$series/w5-latency-$mode.dat"
        local summary
        summary=$(printf '%s' "$line" | node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(`${j.handled} handled of ${j.published} published (${j.distinct_handled} distinct, ${j.left} left); p50 ${j.p50_ms} ms, p99 ${j.p99_ms} ms, max ${j.max_ms} ms, max backlog ${j.max_backlog}`)' 2>/dev/null || echo "$line")
        published=$(q "SELECT count(*) FROM orders"); handled=$(q "SELECT count(*) FROM bench_handled")
        distinct=$(q "SELECT count(DISTINCT n) FROM bench_handled"); left=$(q "SELECT count(*) FROM outbox_events")
        check "W5 latency at $W5_SHARE % of capacity ($rate/s), synchronous_commit=$mode: every event handled once ($summary; target p99 <= 10 ms)" \
            test "$published" -gt 0 -a "$published" = "$handled" -a "$handled" = "$distinct" -a "$left" = 0
    done
    relay off
    q "DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'"
    check_series "W5 capacity: backlog over time" "$series"/w5-backlog-{on,off}.dat && plots_wanted+=(w5-backlog)
    check_series "W5 latency: per-event latencies" "$series"/w5-latency-{on,off}.dat && plots_wanted+=(w5-latency)
    [ $quick = 1 ] || echo "{\"workload\":\"W5cmd\",\"cmd\":\"PGOPTIONS='-c synchronous_commit=on|off' pgbench -n -M prepared -c $W5_CLIENTS -j 2 -T $W5_SECONDS -f bench/sql/w3_publish.sql bench; then the same with -R ($W5_SHARE % of its tps)\"}" >>"$results"
}

###############################################################################
# W7: many databases. W7_DATABASES databases (copies of one template with
# CREATE EXTENSION outbox and a SQL-handler subscription) served by one
# configuration, against 1 database served, in the same run (W7_ROUNDS
# rounds, 1 then all): that each relay delivers; the CPU the outbox workers
# take while idle; their memory; and commit -> handler latency with single
# events published into W7_TARGETS of the databases at W7_RATE events/s in all.
###############################################################################
# w7_cpu_ns PID...: the CPU time (ns, /proc/PID/schedstat) of each, one a line ("pid ns").
w7_cpu_ns() { local p; for p in "$@"; do [ -r "/proc/$p/schedstat" ] && echo "$p $(cut -d' ' -f1 "/proc/$p/schedstat")"; done; }
# w7_ticks PID...: utime + stime (clock ticks, /proc/PID/stat) of each ("pid ticks").
w7_ticks() { local p; for p in "$@"; do [ -r "/proc/$p/stat" ] && echo "$p $(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')"; done; }
# w7_pids TYPE: the pids of the backends of that backend_type.
w7_pids() { q "SELECT pid FROM pg_stat_activity WHERE backend_type = '$1' ORDER BY pid" | tr '\n' ' '; }
# w7_mem PID...: "rss pss private_clean private_dirty" (kB, /proc/PID/smaps_rollup) of each, one a line.
w7_mem() {
    local p
    for p in "$@"; do
        awk '/^Rss:/ { r = $2 } /^Pss:/ { s = $2 } /^Private_Clean:/ { c = $2 } /^Private_Dirty:/ { d = $2 } END { if (r != "") print r, s, c, d }' "/proc/$p/smaps_rollup" 2>/dev/null
    done
}
w7_serve() {   # w7_serve "db1,db2,...": outbox.databases, outbox.enabled on, reload
    q "ALTER SYSTEM SET outbox.databases = '$1'" && q "ALTER SYSTEM SET outbox.enabled = on" && q "SELECT pg_reload_conf()" >/dev/null
}

w7() {
    if [ "$have_subscriptions" = 0 ]; then
        skip "W7 many databases: the installed outbox has no subscription API (outbox_subscribe)"
        return
    fi
    local n=$W7_DATABASES k=$W7_TARGETS
    [ "$k" -gt "$n" ] && k=$n
    log "W7 many databases: $n databases served by one configuration against 1, $W7_ROUNDS round(s): idle CPU over $W7_IDLE_SECONDS s, memory, latency at $W7_RATE events/s into $k of them for $W7_SECONDS s"
    relay off
    q "ALTER SYSTEM SET outbox.databases = ''"
    q "SELECT pg_reload_conf()" >/dev/null
    local i dbs=() all
    "$pbin/createdb" w7_template && "${psql[@]}" -d w7_template -f bench/sql/setup.sql >"$bw/w7-setup.log" 2>&1 &&
        "${psql[@]}" -d w7_template -At -c "SELECT outbox_subscribe('bench_w7', 'order.*', 'bench_record')" >/dev/null ||
        { cat "$bw/w7-setup.log"; notok "W7: the template database"; return; }
    local t0
    t0=$(date +%s.%N)
    for i in $(seq 1 "$n"); do
        dbs+=("$(printf 'w7_%02d' "$i")")
        q "CREATE DATABASE ${dbs[-1]} TEMPLATE w7_template" || { notok "W7: CREATE DATABASE ${dbs[-1]}"; return; }
    done
    log "W7: $n databases created in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
    all=$(IFS=,; echo "${dbs[*]}")
    # The workers the cluster needs: the outbox launcher, a relay per served
    # database (no sink worker: SQL handlers only), and core's logical
    # replication launcher; nothing else (no room left for parallel query).
    local mwp=$((1 + n + 1)) maxdb=$n
    [ "$maxdb" -lt 16 ] && maxdb=16
    q "ALTER SYSTEM SET max_worker_processes = $mwp"
    q "ALTER SYSTEM SET outbox.max_databases = $maxdb"
    "$pbin/pg_ctl" -D "$data" -l "$bw/server.log" -m fast -w restart >/dev/null ||
        { tail -n 30 "$bw/server.log"; notok "W7: restart with max_worker_processes = $mwp"; return; }
    local targets=() one_targets=()
    for i in $(seq 0 $((k - 1))); do targets+=("${dbs[$((i * n / k))]}"); one_targets+=("${dbs[0]}"); done
    local per_rate
    per_rate=$(awk -v r="$W7_RATE" -v k="$k" 'BEGIN { printf "%.2f", r / k }')
    local r phase served want list tl a b c
    for r in $(seq 1 "$W7_ROUNDS"); do
        for phase in one many; do
            if [ $phase = one ]; then served=("${dbs[0]}"); list=${dbs[0]}; want=1; tl=("${one_targets[@]}")
            else served=("${dbs[@]}"); list=$all; want=$n; tl=("${targets[@]}"); fi
            w7_serve "$list"
            # Wait for exactly the relays wanted (the others stopped).
            local relays=0
            for i in $(seq 1 1200); do
                relays=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay'")
                [ "$relays" = "$want" ] && [ "$(q "SELECT count(*) FROM outbox_worker_stats() WHERE state = 'idle'")" = "$want" ] && break
                sleep 0.1
            done
            check "W7 round $r, $want database(s) served: $relays relay(s) running (max_worker_processes = $mwp)" test "$relays" = "$want"
            # Each relay delivers: one event published into each served database, handled there.
            local db
            for db in "${served[@]}"; do
                "${psql[@]}" -d "$db" -At -c "TRUNCATE orders, bench_handled, outbox_events, outbox_events_archive" \
                    -c "BEGIN; WITH o AS (INSERT INTO orders (customer_id, amount, status) VALUES (1, 1, 'w7') RETURNING id) SELECT outbox_publish('order.created', bench_payload(o.id)) FROM o; COMMIT" \
                    >/dev/null 2>>"$bw/w7-errors.log"
            done
            local delivering=0
            for i in $(seq 1 300); do
                delivering=0
                for db in "${served[@]}"; do
                    [ "$("${psql[@]}" -d "$db" -At -c "SELECT count(*) FROM bench_handled")" = 1 ] && delivering=$((delivering + 1))
                done
                [ $delivering = "$want" ] && break
                sleep 0.2
            done
            check "W7 round $r, $want database(s) served: an event published into each was handled there ($delivering of $want)" test $delivering = "$want"
            # Idle: the CPU of the outbox workers over W7_IDLE_SECONDS.
            sleep 2
            local launcher relay_pids all_pids
            launcher=$(w7_pids 'outbox launcher'); relay_pids=$(w7_pids 'outbox relay')
            all_pids="$launcher $relay_pids $(w7_pids 'outbox sink')"
            local c0 c1 k0 k1 ta tb
            ta=$(date +%s.%N); c0=$(w7_cpu_ns $all_pids); k0=$(w7_ticks $all_pids)
            sleep "$W7_IDLE_SECONDS"
            tb=$(date +%s.%N); c1=$(w7_cpu_ns $all_pids); k1=$(w7_ticks $all_pids)
            local cpu ticks
            cpu=$(join <(sort <<<"$c0") <(sort <<<"$c1") | awk -v a="$ta" -v b="$tb" '{ s += $3 - $2; m++ } END { printf "%.3f %d", 100 * s / 1e9 / (b - a), m }')
            ticks=$(join <(sort <<<"$k0") <(sort <<<"$k1") | awk -v a="$ta" -v b="$tb" -v hz="$(getconf CLK_TCK)" '{ s += $3 - $2 } END { printf "%.3f", 100 * s / hz / (b - a) }')
            local cpu_pct procs
            read -r cpu_pct procs <<<"$cpu"
            # Memory of each relay (and of the launcher).
            local mem lmem
            mem=$(w7_mem $relay_pids | awk '{ r += $1; s += $2; c += $3; d += $4; m++ } END { if (m) printf "%.0f %.0f %.0f %.0f", r / m, s / m, c / m, d / m; else print "0 0 0 0" }')
            lmem=$(w7_mem $launcher | awk '{ print $2, $4 }')
            local rss pss pclean pdirty lpss ldirty
            read -r rss pss pclean pdirty <<<"$mem"; read -r lpss ldirty <<<"${lmem:-0 0}"
            # Latency: single events into the targets, one pgbench client per
            # target at W7_RATE / W7_TARGETS events/s (the one-database phase:
            # as many clients, all into that database).
            for db in "${tl[@]}"; do
                "${psql[@]}" -d "$db" -At -c "TRUNCATE orders, bench_handled, outbox_events, outbox_events_archive" >/dev/null
            done
            local pids=() j=0
            for db in "${tl[@]}"; do
                j=$((j + 1))
                "$pbin/pgbench" -n -M prepared -c 1 -R "$per_rate" -T "$W7_SECONDS" -f bench/sql/w3_publish.sql "$db" \
                    >"$bw/w7-pgbench-$phase-$j.log" 2>&1 &
                pids+=($!)
            done
            local pgb_ok=0
            for i in "${pids[@]}"; do wait "$i" || pgb_ok=1; done
            [ $pgb_ok = 0 ] || { cat "$bw"/w7-pgbench-$phase-*.log; notok "W7 publishers (pgbench)"; }
            local uniq_t
            uniq_t=$(printf '%s\n' "${tl[@]}" | sort -u)
            for i in $(seq 1 300); do
                local pending=0
                for db in $uniq_t; do
                    pending=$((pending + $("${psql[@]}" -d "$db" -At -c "SELECT count(*) FROM outbox_events")))
                done
                [ $pending = 0 ] && break
                sleep 0.1
            done
            local inner="SELECT pg_xact_commit_timestamp(o.xmin) AS c, extract(epoch FROM h.handled_at - pg_xact_commit_timestamp(o.xmin)) * 1000 AS ms FROM orders o JOIN bench_handled h ON h.n = o.id"
            local rows="$bw/w7-latency-$phase.rows" published=0 handled=0 distinct=0
            : >"$rows"
            for db in $uniq_t; do
                local cnt
                cnt=$("${psql[@]}" -d "$db" -At -F ' ' -c "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM bench_handled), (SELECT count(DISTINCT n) FROM bench_handled)")
                read -r a b c <<<"$cnt"
                published=$((published + a)); handled=$((handled + b)); distinct=$((distinct + c))
                "${psql[@]}" -d "$db" -At -c "COPY (SELECT extract(epoch FROM c), ms FROM ($inner) x) TO STDOUT WITH (DELIMITER ' ')" >>"$rows"
            done
            cut -d' ' -f2 "$rows" >"$rows.ms"
            local p50 p99 pmax events
            p50=$(pct "$rows.ms" 50); p99=$(pct "$rows.ms" 99); pmax=$(pct "$rows.ms" 100); events=$(wc -l <"$rows.ms")
            local line
            line="{\"workload\":\"W7\",\"phase\":\"$phase\",\"round\":$r,\"databases\":$n,\"served\":$want,\"relays\":$relays,\"delivering\":$delivering,\"max_worker_processes\":$mwp,\"idle_seconds\":$W7_IDLE_SECONDS,\"processes\":${procs:-0},\"idle_cpu_pct\":${cpu_pct:-null},\"idle_cpu_pct_ticks\":${ticks:-null},\"relay_rss_kib\":$rss,\"relay_pss_kib\":$pss,\"relay_private_clean_kib\":$pclean,\"relay_private_dirty_kib\":$pdirty,\"launcher_pss_kib\":$lpss,\"launcher_private_dirty_kib\":$ldirty,\"targets\":$(printf '%s\n' $uniq_t | wc -l),\"clients\":$k,\"rate\":$W7_RATE,\"seconds\":$W7_SECONDS,\"published\":$published,\"handled\":$handled,\"distinct_handled\":$distinct,\"events\":$events,\"p50_ms\":$p50,\"p99_ms\":$p99,\"max_ms\":$pmax}"
            echo "$line" >>"$results"
            {
                series_head "$line" workload phase served targets rate seconds events p50_ms p99_ms max_ms
                echo "# columns t ms"
                sort -g "$rows" | awk 'NR == 1 { t0 = $1 } { printf "%.3f %.3f\n", $1 - t0, $2 }'
            } >"$series/w7-latency-$phase.dat"
            rm -f "$rows" "$rows.ms"
            check "W7 round $r, $want database(s) served: idle, the $procs outbox workers took $cpu_pct % of one core (ticks: $ticks %; target < 1 %); a relay's memory: PSS $pss kB, private dirty $pdirty kB (RSS $rss kB); single events into $(printf '%s\n' $uniq_t | wc -l) database(s): $handled handled of $published ($distinct distinct), p50 $p50 ms, p99 $p99 ms, max $pmax ms" \
                test "$published" -gt 0 -a "$published" = "$handled" -a "$handled" = "$distinct"
        done
    done
    relay off
    q "ALTER SYSTEM SET outbox.databases = 'bench'"
    q "ALTER SYSTEM RESET max_worker_processes"
    q "ALTER SYSTEM RESET outbox.max_databases"
    "$pbin/pg_ctl" -D "$data" -l "$bw/server.log" -m fast -w restart >/dev/null ||
        { tail -n 30 "$bw/server.log"; notok "W7: restart with the settings before"; }
    check_series "W7 latency: per-event latencies" "$series"/w7-latency-{one,many}.dat && plots_wanted+=(w7-latency)
    [ $quick = 1 ] || echo "{\"workload\":\"W7cmd\",\"cmd\":\"outbox.databases = '$(IFS=,; echo "${dbs[0]},...,${dbs[-1]}")' ($n copies of one template: CREATE EXTENSION outbox, outbox_subscribe('bench_w7', 'order.*', 'bench_record')), max_worker_processes = $mwp, outbox.max_databases = $maxdb; against outbox.databases = '${dbs[0]}'; per phase: /proc/PID/schedstat of the outbox workers over $W7_IDLE_SECONDS s idle, /proc/PID/smaps_rollup of each relay; $k x pgbench -n -M prepared -c 1 -R $per_rate -T $W7_SECONDS -f bench/sql/w3_publish.sql <database>\"}" >>"$results"
}
