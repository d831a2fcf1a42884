#!/usr/bin/env bash
# The idle cost of many relays against outbox.poll_interval (bench/PROFILING.md,
# "W7: idle relays"). Run as the cluster's user after `bench/run.sh --only W7`,
# on the cluster it left (its 50 databases w7_01 ... w7_50):
#
#   runuser -u postgres -- bash bench/lib/w7-idle-poll.sh /tmp/work_scale 5641 [SECONDS] [INTERVALS]
#
# Starts that cluster with every w7_* database served, then for each poll
# interval (default "1s 10s 1s") measures over SECONDS (30) idle: the CPU time
# of all outbox workers (/proc/PID/schedstat) as % of one core, and the
# transactions the relays committed (pg_stat_database.xact_commit of the w7_*
# databases) per relay per second. Stops the cluster at the end.
set -uo pipefail
work=${1:?work folder}; port=${2:?port}; secs=${3:-30}; intervals=${4:-"1s 10s 1s"}
bw=$work/bench; data=$bw/data; pbin=$(dirname "$(find "$work/pg" -name pg_ctl -type f | head -n 1)")
export PGHOST=$bw/sock PGPORT=$port PGDATABASE=bench
q() { "$pbin/psql" -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
"$pbin/pg_ctl" -D "$data" -l "$bw/server.log" -w start >/dev/null || exit 1
trap '"$pbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null' EXIT
dbs=$(q "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname ~ '^w7_[0-9]+$'")
n=$(tr ',' '\n' <<<"$dbs" | wc -l)
q "ALTER SYSTEM SET max_worker_processes = $((n + 2))"
q "ALTER SYSTEM SET outbox.max_databases = $((n > 16 ? n : 16))"
q "ALTER SYSTEM SET outbox.databases = '$dbs'"
q "ALTER SYSTEM SET outbox.enabled = on"
"$pbin/pg_ctl" -D "$data" -l "$bw/server.log" -m fast -w restart >/dev/null || exit 1
for i in $(seq 1 600); do
    [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay'")" = "$n" ] && break
    sleep 0.1
done
sleep 5
cpu() { local p; for p in $(q "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'outbox %'"); do cut -d' ' -f1 "/proc/$p/schedstat"; done | awk '{ s += $1 } END { print s + 0 }'; }
xacts() { q "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname ~ '^w7_[0-9]+$'"; }
echo "relays $n, idle $secs s per interval"
for pi in $intervals; do
    q "ALTER SYSTEM SET outbox.poll_interval = '$pi'" && q "SELECT pg_reload_conf()" >/dev/null
    sleep 3
    q "SELECT pg_stat_clear_snapshot()" >/dev/null
    c0=$(cpu); x0=$(xacts); t0=$(date +%s.%N)
    sleep "$secs"
    c1=$(cpu); t1=$(date +%s.%N); sleep 1; x1=$(xacts)   # the statistics are flushed at most once a second
    awk -v pi="$pi" -v n="$n" -v c0="$c0" -v c1="$c1" -v x0="$x0" -v x1="$x1" -v t0="$t0" -v t1="$t1" 'BEGIN {
        w = t1 - t0; tx = (x1 - x0) / n / w
        printf "poll_interval %-5s idle CPU of the outbox workers %.3f %% of one core; %.2f transactions per relay per second; %.0f us of CPU per relay transaction\n",
            pi, 100 * (c1 - c0) / 1e9 / w, tx, (tx > 0 ? (c1 - c0) / 1e3 / n / w / tx : 0) }'
done
q "ALTER SYSTEM RESET outbox.poll_interval"
