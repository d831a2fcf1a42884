#!/usr/bin/env bash
# The Prometheus side of monitoring, for real (issue 15): a throwaway cluster
# with the extension, Debian's prometheus-postgres-exporter reading
# monitoring/queries.yaml, and Prometheus with monitoring/alerts.yml.
#
#   bash test/monitoring/run.sh        (or: scripts/test.sh monitoring)
#
# 1. promtool check rules and promtool test rules (monitoring/alerts_test.yml).
# 2. A cluster serving database "mon" with the relay: a SQL subscription that
#    delivers 5 events and fails one for good, a paused one, webhook
#    subscriptions to a paused endpoint, to one whose port is closed (its
#    breaker opens) and to one that answers 410 Gone (the sink disables it),
#    a consumer that completes 2 events, fails 1 for good and holds 1.
# 3. The exporter on 127.0.0.1 (a free port), as a pg_monitor role: /metrics
#    scraped with curl, its values checked against what happened (and
#    against outbox_metrics()), the types, promtool check metrics.
# 4. The relay failing to start (outbox.role cannot log in):
#    outbox_relay_up goes to 0.
# 5. Prometheus scraping the exporter every second with the alert rules
#    (their `for` set to 0): exactly the expected alerts fire; then with the
#    relay turned off (outbox.enabled, no relay row) OutboxRelayMissing
#    instead of OutboxRelayDown.
# 6. A second database through one exporter (--auto-discover-databases).
#
# Prints "ok - ..." / "not ok - ..." per check and ends with
# "N passed, N failed". Run as root it installs what it needs (apt), copies
# the tree to a work folder owned by postgres and runs itself again as that
# user. scripts/test.sh passes PGBIN (a private installation with the
# extension) and OUTBOX_WORK; alone, it builds one. The server log is
# $OUTBOX_WORK/monitoring/postgresql.log.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../../scripts/lib.sh"
src=$outbox_src

if [ "$(id -u)" = 0 ]; then
    missing=()
    for p in prometheus-postgres-exporter prometheus curl python3; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "# installing ${missing[*]} (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
            echo "# could not install ${missing[*]}"
    fi
    outbox_run_unprivileged "$src/test/monitoring/run.sh" "$@"
fi

work=${OUTBOX_WORK:-$src/.work}
mon="$work/monitoring"
rm -rf "$mon" && mkdir -p "$mon"
passed=0
failed=0
started=$(date +%s)
ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() {  # check DESCRIPTION COMMAND...: ok if the command succeeds
    local what=$1; shift
    if "$@"; then ok "$what"; else notok "$what"; fi
}
finish() {
    echo "# monitoring took $(( $(date +%s) - started )) s; files in $mon"
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ]
    exit
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_for SECONDS COMMAND...: until the command succeeds, at most SECONDS.
wait_for() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

exporter=$(command -v prometheus-postgres-exporter || echo /usr/bin/prometheus-postgres-exporter)
prometheus=$(command -v prometheus || echo /usr/bin/prometheus)
promtool=$(command -v promtool || echo /usr/bin/promtool)
for tool in "$exporter" "$prometheus" "$promtool" "$(command -v curl)"; do
    if [ ! -x "$tool" ]; then
        notok "installed: ${tool:-curl} (apt-get install prometheus-postgres-exporter prometheus curl)"
        finish
    fi
done
echo "# $("$exporter" --version 2>&1 | head -n 1)"
echo "# $("$promtool" --version 2>&1 | head -n 1)"

# ---------------------------------------------------------------- 1. the rules alone
if "$promtool" check rules "$src/monitoring/alerts.yml" >"$mon/check-rules.out" 2>&1; then
    ok "promtool check rules monitoring/alerts.yml: $(grep -o '[0-9]* rules found' "$mon/check-rules.out")"
else
    sed 's/^/# /' "$mon/check-rules.out"; notok "promtool check rules monitoring/alerts.yml"
fi
if (cd "$src/monitoring" && timeout 60 "$promtool" test rules alerts_test.yml) >"$mon/test-rules.out" 2>&1; then
    ok "promtool test rules monitoring/alerts_test.yml: every alert fires, and does not where it must not"
else
    sed 's/^/# /' "$mon/test-rules.out" | head -n 80; notok "promtool test rules monitoring/alerts_test.yml"
fi

# ---------------------------------------------------------------- 2. the cluster
if [ -z "${PGBIN:-}" ]; then
    echo "# building the extension into a private copy of PostgreSQL ($work/pg)"
    PGBIN=$(outbox_private_install "$work/pg") || { notok "build and install the extension"; finish; }
fi
data="$mon/data"
sock="$mon/sock"
mkdir -p "$sock"
pgport=5432   # a socket in a private folder: no TCP port
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -f "$data/postmaster.pid" ] && "$PGBIN/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1
}
trap cleanup EXIT
trap 'exit 1' TERM INT

"$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$mon/initdb.log" 2>&1 ||
    { cat "$mon/initdb.log"; notok "initdb"; finish; }
cat >>"$data/postgresql.conf" <<EOF
port = $pgport
listen_addresses = ''
unix_socket_directories = '$sock'
shared_preload_libraries = 'outbox'
outbox.max_retries = 1
outbox.base_backoff = '20ms'
outbox.max_backoff = '100ms'
outbox.webhook_allow_private_addresses = on
outbox.webhook_breaker_failures = 1
outbox.webhook_timeout = '2s'
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
if ! "$PGBIN/pg_ctl" -D "$data" -l "$mon/postgresql.log" -w -t 60 start >/dev/null; then
    tail -n 40 "$mon/postgresql.log"; notok "start PostgreSQL"; finish
fi
psql() { PGOPTIONS='-c outbox.require_transaction=off' "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$pgport" -U postgres "$@"; }
q() { psql -d mon -Atc "$1"; }

# An endpoint that answers 410 Gone (the sink disables it), bounded in time.
gone_port=$(free_port)
timeout 300 python3 - "$gone_port" >"$mon/gone.log" 2>&1 <<'EOF' &
import http.server, sys
class Gone(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.send_response(410); self.send_header('Content-Length', '0'); self.end_headers()
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Gone).serve_forever()
EOF
pids+=($!)
closed_port=$(free_port)   # nobody listens there: connection refused

psql -d postgres -c 'CREATE DATABASE mon' >/dev/null &&
psql -d mon >"$mon/setup.log" 2>&1 <<EOF
CREATE EXTENSION outbox;
CREATE ROLE prometheus LOGIN IN ROLE pg_monitor;
CREATE TABLE effects (event_id uuid PRIMARY KEY);
CREATE FUNCTION on_order(e outbox_events) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    IF e.payload ? 'poison' THEN
        RAISE EXCEPTION 'poison event: %', e.payload->>'poison';
    END IF;
    INSERT INTO public.effects VALUES (e.id);
END \$\$;
CREATE FUNCTION on_audit(e outbox_events) RETURNS void LANGUAGE sql AS \$\$ SELECT \$\$;
SELECT outbox_subscribe('orders', 'order.*', 'on_order');
SELECT outbox_subscribe('audit', 'order.*', 'on_audit');
SELECT outbox_pause_subscription('audit');
SELECT outbox_create_endpoint('held', 'http://127.0.0.1:$closed_port/held') IS NOT NULL;
SELECT outbox_pause_endpoint('held');
SELECT outbox_subscribe_webhook('to_held', 'order.*', 'held');
SELECT outbox_create_endpoint('down', 'http://127.0.0.1:$closed_port/down') IS NOT NULL;
SELECT outbox_subscribe_webhook('to_down', 'hook.down', 'down');
SELECT outbox_create_endpoint('gone', 'http://127.0.0.1:$gone_port/gone') IS NOT NULL;
SELECT outbox_subscribe_webhook('to_gone', 'hook.gone', 'gone');
BEGIN;
SELECT outbox_publish('order.created', jsonb_build_object('n', n)) FROM generate_series(1, 5) n;
SELECT outbox_publish('order.created', '{"poison": "bad input"}');
SELECT outbox_publish('order.later', '{}', delay => '1 hour');
SELECT outbox_publish('hook.down', '{}');
SELECT outbox_publish('hook.gone', '{}');
SELECT outbox_publish('job.run', jsonb_build_object('n', n)) FROM generate_series(1, 4) n;
COMMIT;
-- A consumer: completes 2, fails 1 for good, holds 1.
CREATE TEMP TABLE c AS SELECT * FROM outbox_claim(4, lease => '1 hour', consumer => 'billing', types => ARRAY['job.run']);
SELECT outbox_complete((SELECT array_agg(id) FROM (SELECT id FROM c ORDER BY id LIMIT 2) x), (SELECT lease_token FROM c LIMIT 1));
SELECT outbox_fail((SELECT id FROM c ORDER BY id OFFSET 2 LIMIT 1), (SELECT lease_token FROM c LIMIT 1), 'bad job', retryable => false);
EOF
if [ $? -ne 0 ]; then
    sed 's/^/# /' "$mon/setup.log"; notok "set up database mon (subscriptions, endpoints, events, a consumer)"; finish
fi
# Served from now on (a reload: the launcher would look for a database
# listed before it existed only every 10 s).
psql -d mon -c "ALTER SYSTEM SET outbox.databases = 'mon'" -c 'SELECT pg_reload_conf()' >/dev/null
ok "database mon: 2 SQL subscriptions (one paused), 3 webhook endpoints, 14 events, consumer billing"

# The relay delivers orders' 5 and fails its poison (2 attempts); the sink's
# attempts to "down" fail (its breaker opens; the probe after the cool-down
# fails it for good), and "gone" answers 410 (disabled).
settled="SELECT (SELECT delivered_total = 5 AND failed_total = 1 FROM outbox_metrics() WHERE name = 'orders')
            AND (SELECT failed_total = 1 FROM outbox_metrics() WHERE name = 'to_down')
            AND (SELECT state = 'disabled' FROM outbox_endpoint_stats() WHERE endpoint = 'gone')"
is_settled() { [ "$(q "$settled")" = t ]; }
if wait_for 60 is_settled; then
    ok "the relay and the sink settled: orders 5 delivered, 1 failed for good; to_down failed; endpoint gone disabled"
else
    notok "the relay and the sink settled within 60 s"
    psql -d mon -c 'SELECT kind, name, pending, failed, delivered_total, failed_total, retried_total FROM outbox_metrics()' \
        -c 'SELECT endpoint, state, breaker, last_error FROM outbox_endpoint_stats()' -c 'SELECT * FROM outbox_worker_stats()' | sed 's/^/# /'
fi

# ---------------------------------------------------------------- 3. the exporter
exporter_port=$(free_port)
DATA_SOURCE_NAME="host=$sock port=$pgport user=prometheus dbname=mon sslmode=disable" \
    "$exporter" --extend.query-path="$src/monitoring/queries.yaml" \
    --web.listen-address="127.0.0.1:$exporter_port" --log.level=info >"$mon/exporter.log" 2>&1 &
pids+=($!)
metrics_url="http://127.0.0.1:$exporter_port/metrics"
scrape() { curl -sf --max-time 20 "$metrics_url" >"$1"; }
if wait_for 30 scrape "$mon/metrics.txt"; then
    ok "exporter: /metrics on 127.0.0.1:$exporter_port answers ($(grep -c '^outbox_' "$mon/metrics.txt") outbox_ samples)"
else
    sed 's/^/# /' "$mon/exporter.log" | tail -n 30; notok "exporter: /metrics answers within 30 s"; finish
fi

m="$mon/metrics.txt"
value() { python3 "$here/prom.py" value "$m" "$@"; }
# expect METRIC 'label=value ...' EXPECTED [DESCRIPTION]
expect() {
    local got
    # shellcheck disable=SC2086
    got=$(value "$1" $2)
    if [ "$got" = "$3" ]; then ok "$1{$2} = $3${4:+: $4}"; else notok "$1{$2} = $3${4:+: $4} (got $got)"; fi
}
expect pg_up "" 1 "the exporter reaches the server"
expect pg_exporter_last_scrape_error "" 0 "every query of queries.yaml ran"
expect pg_exporter_user_queries_load_error "" 0 "queries.yaml loaded"
expect outbox_relay_up "database=mon" 1 "the relay runs"
expect outbox_deliveries_total "database=mon subscription=orders outcome=delivered" 5
expect outbox_deliveries_total "database=mon subscription=orders outcome=failed" 1
expect outbox_deliveries_total "database=mon subscription=orders outcome=retried" 1 "the poison's first attempt"
expect outbox_deliveries_total "database=mon subscription=orders outcome=reclaimed" 0
expect outbox_deliveries_total "database=mon subscription=to_down outcome=failed" 1 "the webhook that could not connect"
expect outbox_deliveries_total "database=mon consumer=billing outcome=delivered" 2
expect outbox_deliveries_total "database=mon consumer=billing outcome=failed" 1
expect outbox_subscription_pending "subscription=orders sink=sql endpoint=" 1 "order.later, scheduled"
expect outbox_subscription_scheduled "subscription=orders" 1
expect outbox_subscription_failed "subscription=orders" 1
expect outbox_subscription_paused "subscription=orders" 0
expect outbox_subscription_pending "subscription=audit" 7 "paused: 6 due, 1 scheduled"
expect outbox_subscription_due "subscription=audit" 6
expect outbox_subscription_paused "subscription=audit" 1
expect outbox_subscription_pending "subscription=to_held sink=http endpoint=held" 7 "its endpoint is paused"
expect outbox_consumer_in_flight "consumer=billing" 1 "the job it still holds"
expect outbox_failed "database=mon" 3 "orders' and to_down's deliveries and billing's event"
expect outbox_endpoint_disabled "endpoint=gone" 1 "it answered 410 Gone"
expect outbox_endpoint_disabled "endpoint=held" 0
expect outbox_endpoint_paused "endpoint=held" 1
expect outbox_endpoint_breaker_open "endpoint=down" 1 "connection refused"
expect outbox_endpoint_breaker_open "endpoint=held" 0
total_pending=$(q "SELECT pending FROM outbox_metrics() WHERE kind = 'total'")
expect outbox_pending "database=mon" "$total_pending" "as outbox_metrics() says"
age=$(value outbox_subscription_oldest_pending_age_seconds subscription=audit)
check "outbox_subscription_oldest_pending_age_seconds{subscription=audit} = $age: above 0" \
    python3 -c "import sys; sys.exit(0 if 0 < float('$age') < 600 else 1)"
age=$(value outbox_subscription_oldest_pending_age_seconds subscription=orders)
check "outbox_subscription_oldest_pending_age_seconds{subscription=orders} = $age: nothing due (0)" test "$age" = 0

lag_count=$(q "SELECT lag_seconds_count FROM outbox_metrics() WHERE name = 'orders'")
hist=$(python3 "$here/prom.py" histogram "$m" outbox_delivery_lag_seconds subscription=orders)
if [ "${hist%% *}" = "$lag_count" ] && [ "$lag_count" -ge 5 ] 2>/dev/null; then
    ok "outbox_delivery_lag_seconds{subscription=orders}: buckets cumulative up to +Inf, count $lag_count as outbox_metrics() says, sum ${hist#* }"
else
    notok "outbox_delivery_lag_seconds{subscription=orders}: a histogram with count $lag_count (got: $hist)"
fi
hist=$(python3 "$here/prom.py" histogram "$m" outbox_delivery_lag_seconds consumer=billing)
check "outbox_delivery_lag_seconds{consumer=billing}: a histogram, count 4, one per event first claimed (got: $hist)" test "${hist%% *}" = 4
types=""
for f in outbox_deliveries_total:counter outbox_delivery_lag_seconds:histogram outbox_subscription_pending:gauge \
         outbox_oldest_pending_age_seconds:gauge outbox_relay_up:gauge outbox_endpoint_disabled:gauge; do
    t=$(python3 "$here/prom.py" type "$m" "${f%%:*}")
    [ "$t" = "${f#*:}" ] || types+=" ${f%%:*} is $t;"
done
check "types: outbox_deliveries_total counter, outbox_delivery_lag_seconds histogram, the rest gauges${types:+ (wrong:$types)}" \
    test -z "$types"
python3 "$here/prom.py" families "$m" outbox_ >"$mon/outbox-metrics.txt"
if "$promtool" check metrics <"$mon/outbox-metrics.txt" >"$mon/check-metrics.out" 2>&1 && [ ! -s "$mon/check-metrics.out" ]; then
    ok "promtool check metrics: the outbox_ families follow Prometheus' naming conventions"
else
    sed 's/^/# /' "$mon/check-metrics.out"; notok "promtool check metrics on the outbox_ families"
fi
if grep -q 'level=error\|err=' "$mon/exporter.log"; then
    grep 'level=error\|err=' "$mon/exporter.log" | head -n 10 | sed 's/^/# /'
    notok "exporter log: no error"
else
    ok "exporter log: no error"
fi

# ---------------------------------------------------------------- 4. the relay down
# outbox.role names a role that cannot log in: the relay restarts after
# 1 s, 2 s, 4 s ..., failing each time (its row says stopped).
psql -d mon -c 'CREATE ROLE relay_nologin NOLOGIN' -c "ALTER SYSTEM SET outbox.role = 'relay_nologin'" \
    -c 'SELECT pg_reload_conf()' >/dev/null
q "SELECT pg_terminate_backend(pid) FROM outbox_worker_stats() WHERE pid IS NOT NULL" >/dev/null
relay_failing() {
    [ "$(grep -c 'role "relay_nologin" is not permitted to log in' "$mon/postgresql.log")" -ge 2 ] &&
        [ "$(q "SELECT pid IS NULL FROM outbox_worker_stats() WHERE database = 'mon'")" = t ]
}
relay_down_scraped() { scrape "$m" && [ "$(value outbox_relay_up database=mon)" = 0 ]; }
if wait_for 30 relay_failing && wait_for 10 relay_down_scraped; then
    ok "outbox_relay_up{database=mon} = 0: the relay fails to start (outbox.role cannot log in)"
else
    notok "outbox_relay_up{database=mon} = 0 once the relay fails to start (got $(value outbox_relay_up database=mon))"
fi

# ---------------------------------------------------------------- 5. Prometheus and the rules
prom_port=$(free_port)
sed -E 's/^( *)for: .*/\1for: 0s/' "$src/monitoring/alerts.yml" >"$mon/alerts-now.yml"
cat >"$mon/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $mon/alerts-now.yml
scrape_configs:
  - job_name: postgres
    static_configs:
      - targets: ['127.0.0.1:$exporter_port']
EOF
"$prometheus" --config.file="$mon/prometheus.yml" --storage.tsdb.path="$mon/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$mon/prometheus.log" 2>&1 &
pids+=($!)
alerts_now() {
    curl -sf --max-time 5 "http://127.0.0.1:$prom_port/api/v1/alerts" >"$mon/alerts.json" &&
        python3 "$here/prom.py" alerts "$mon/alerts.json" >"$mon/alerts.got" &&
        cmp -s "$mon/alerts.expected" "$mon/alerts.got"
}
# expect_alerts WHAT: the alerts in $mon/alerts.expected, and no other, fire
# within 60 s.
expect_alerts() {
    if wait_for 60 alerts_now; then
        ok "prometheus, $1: exactly the expected alerts fire ($(paste -sd, "$mon/alerts.got" | sed 's/,/, /g'))"
    else
        echo "# expected:"; sed 's/^/#   /' "$mon/alerts.expected"
        echo "# firing:"; sed 's/^/#   /' "$mon/alerts.got" 2>/dev/null
        grep -E 'level=(warn|error)' "$mon/prometheus.log" | tail -n 10 | sed 's/^/# /'
        notok "prometheus, $1: exactly the expected alerts fire within 60 s"
    fi
}
failures='OutboxDeliveriesFailed database=mon subscription=orders
OutboxDeliveriesFailed database=mon subscription=to_down endpoint=down
OutboxEndpointBreakerOpen database=mon endpoint=down
OutboxEndpointDisabled database=mon endpoint=gone
OutboxEventsFailed database=mon'
printf '%s\nOutboxRelayDown database=mon\n' "$failures" | sort >"$mon/alerts.expected"
expect_alerts "relay down"
events_failed=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(a["value"] for a in d["data"]["alerts"] if a["labels"]["alertname"]=="OutboxEventsFailed"))' "$mon/alerts.json" 2>/dev/null)
check "prometheus: OutboxEventsFailed counts 1 event (3 failed less 2 deliveries; got '$events_failed')" \
    python3 -c "import sys; sys.exit(0 if float('${events_failed:-nan}') == 1 else 1)"

# ---------------------------------------------------------------- 6. no relay at all
# outbox.enabled off: the launcher stops the relay, no row is left for the
# database, outbox_relay_up has no series: OutboxRelayMissing instead.
psql -d mon -c 'ALTER SYSTEM SET outbox.enabled = off' -c 'SELECT pg_reload_conf()' >/dev/null
relay_gone() { [ -z "$(q "SELECT 1 FROM outbox_worker_stats() WHERE database = 'mon'")" ]; }
if wait_for 30 relay_gone && scrape "$m"; then
    expect outbox_relay_up "database=mon" none "no series after outbox.enabled = off"
else
    notok "the relay's row is gone after outbox.enabled = off"
fi
printf '%s\nOutboxRelayMissing database=mon\n' "$failures" | sort >"$mon/alerts.expected"
expect_alerts "no relay"

# ---------------------------------------------------------------- 7. two databases, one exporter
# As the README says: connect to one, --auto-discover-databases with
# --include-databases for the others. Every database's rows are its own (no
# duplicate series: the exporter would fail the whole scrape).
psql -d postgres -c 'CREATE DATABASE mon2' >/dev/null && psql -d mon2 -c 'CREATE EXTENSION outbox' >/dev/null
exporter2_port=$(free_port)
DATA_SOURCE_NAME="host=$sock port=$pgport user=prometheus dbname=mon sslmode=disable" \
    "$exporter" --extend.query-path="$src/monitoring/queries.yaml" --auto-discover-databases --include-databases=mon2 \
    --web.listen-address="127.0.0.1:$exporter2_port" >"$mon/exporter2.log" 2>&1 &
pids+=($!)
m="$mon/metrics2.txt"
if wait_for 30 eval 'curl -sf --max-time 20 "http://127.0.0.1:$exporter2_port/metrics" >"$m"'; then
    expect outbox_pending "database=mon2" 0 "the second database, discovered"
    expect outbox_pending "database=mon" 14 "the first one"
    expect pg_exporter_last_scrape_error "" 0 "both databases' queries ran"
else
    notok "the second exporter (--auto-discover-databases) answers within 30 s"
fi

finish
