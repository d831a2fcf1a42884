#!/usr/bin/env bash
# The main job, before your eyes: build outbox, start a throwaway PostgreSQL
# with it loaded, publish events in transactions (one rolled back), and watch
# the relay worker deliver the committed ones to a SQL handler, retry a
# failing one and give up on it after the configured attempts.
#
#   bash scripts/demo.sh          # run the demo, then stop and remove the cluster
#   bash scripts/demo.sh --keep   # leave the cluster running and print how to connect
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$(id -u)" = 0 ] || ! command -v pg_config >/dev/null; then
    bash "$here/install-deps.sh"
fi
source "$here/lib.sh"
outbox_run_unprivileged "$outbox_src/scripts/demo.sh" "$@"

keep=0
[ "${1:-}" = "--keep" ] && keep=1
work=$OUTBOX_WORK
echo "== building outbox and installing it into a private copy of PostgreSQL 15 ($work/pg)"
pbin=$(outbox_private_install "$work/pg")

data="$work/demo-data"
port=$(outbox_free_port)
rm -rf "$data"
"$pbin/initdb" -D "$data" -A trust -U postgres >/dev/null
cat >>"$data/postgresql.conf" <<EOF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
shared_preload_libraries = 'outbox'
# A poll interval of ten minutes: every delivery you see is the commit waking the relay.
outbox.poll_interval = '10min'
outbox.max_retries = 2
outbox.base_backoff = '200ms'
outbox.require_transaction = 'error'
# To show the time from each commit to its delivery.
track_commit_timestamp = on
EOF
stop() { "$pbin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true; }
if [ $keep = 0 ]; then trap 'stop; rm -rf "$data"' EXIT; fi
"$pbin/pg_ctl" -D "$data" -l "$work/demo.log" -w start >/dev/null
echo "== PostgreSQL started (port $port, log $work/demo.log)"
"$pbin/createdb" -h "$work" -p "$port" -U postgres demo
# Serve the new database: the launcher starts its relay on reload.
"$pbin/psql" -h "$work" -p "$port" -U postgres -d demo -Xq \
    -c "ALTER SYSTEM SET outbox.databases = 'demo'" -c "SELECT pg_reload_conf()" >/dev/null

psql=("$pbin/psql" -h "$work" -p "$port" -U postgres -d demo -X -v ON_ERROR_STOP=1 -P pager=off)

"${psql[@]}" -q <<'SQL'
\echo == CREATE EXTENSION outbox, a users table, and a SQL handler subscribed to user.created
CREATE EXTENSION outbox;
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE welcome_emails (
    event_id     uuid PRIMARY KEY,          -- the handler's effect, once per event
    user_id      int NOT NULL,
    published_at timestamptz NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT clock_timestamp());

CREATE FUNCTION send_welcome(e outbox_events) RETURNS void LANGUAGE sql AS $$
    INSERT INTO welcome_emails (event_id, user_id, published_at)
    VALUES (e.id, (e.payload->>'id')::int, e.occurred_at)
$$;
CREATE FUNCTION charge_card(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'card % declined', e.payload->>'card';
END $$;

SELECT outbox_subscribe('welcome-email', 'user.created', 'send_welcome');
SELECT outbox_subscribe('billing', 'payment.*', 'charge_card');

-- The relay of this database started at the reload; wait until it is idle, watching.
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN EXISTS (SELECT FROM outbox_worker_stats() WHERE state = 'idle');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT database, pid IS NOT NULL AS running, state FROM outbox_worker_stats();

\echo
\echo == Three users, each with its event, in their own transactions; a fourth is rolled back
BEGIN;
INSERT INTO users VALUES (1, 'ada@example.com');
SELECT outbox_publish('user.created', '{"id": 1, "email": "ada@example.com"}') AS event_id \gset
COMMIT;
BEGIN;
INSERT INTO users VALUES (2, 'grace@example.com');
SELECT outbox_publish('user.created', '{"id": 2, "email": "grace@example.com"}') \g /dev/null
COMMIT;
BEGIN;
INSERT INTO users VALUES (3, 'edsger@example.com');
SELECT outbox_publish('user.created', '{"id": 3, "email": "edsger@example.com"}') \g /dev/null
COMMIT;
BEGIN;
INSERT INTO users VALUES (4, 'nobody@example.com');
SELECT outbox_publish('user.created', '{"id": 4, "email": "nobody@example.com"}') \g /dev/null
ROLLBACK;
\echo
\echo == A payment event whose handler always fails (outbox.max_retries = 2: three attempts)
BEGIN;
SELECT outbox_publish('payment.captured', '{"order": 7, "card": "4242"}') \g /dev/null
COMMIT;

SELECT pg_sleep(0.3);
\echo
\echo == Three more users, 50 ms apart, now that the relay is warm
BEGIN;
INSERT INTO users VALUES (5, 'barbara@example.com');
SELECT outbox_publish('user.created', '{"id": 5, "email": "barbara@example.com"}') \g /dev/null
COMMIT;
SELECT pg_sleep(0.05) \g /dev/null
BEGIN;
INSERT INTO users VALUES (6, 'donald@example.com');
SELECT outbox_publish('user.created', '{"id": 6, "email": "donald@example.com"}') \g /dev/null
COMMIT;
SELECT pg_sleep(0.05) \g /dev/null
BEGIN;
INSERT INTO users VALUES (7, 'leslie@example.com');
SELECT outbox_publish('user.created', '{"id": 7, "email": "leslie@example.com"}') \g /dev/null
COMMIT;
SELECT pg_sleep(0.3) \g /dev/null

\echo
\echo == Delivered by the relay (poll interval 10 min: each commit woke it)
\echo == (a first wave can take longer: it also pays for the start of a new relay, loading its plans and caches)
-- users.xmin is the transaction that inserted the user and published its event.
SELECT w.user_id, u.email,
       round(extract(epoch FROM w.delivered_at - pg_xact_commit_timestamp(u.xmin)) * 1000, 2) AS ms_after_commit
  FROM welcome_emails w JOIN users u ON u.id = w.user_id ORDER BY w.user_id;
\echo == The rolled-back user 4 has no event, so no email; delivered events are archived:
SELECT type, payload->>'id' AS user_id, status FROM outbox_events_archive ORDER BY seq;

\echo
\echo == Waiting for the failing payment event to use up its attempts (backoff 200 ms, full jitter)...
DO $$
BEGIN
    FOR i IN 1..100 LOOP
        EXIT WHEN EXISTS (SELECT FROM outbox_failed_deliveries());
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
-- Its delivery to that subscription failed for good; its other deliveries went on.
SELECT type, subscription, attempts, last_error FROM outbox_failed_deliveries();

\echo
\echo == Statistics
SELECT * FROM outbox_stats();
SELECT database, state, delivered, failed, retried FROM outbox_worker_stats();
-- Per subscription (what Prometheus scrapes through monitoring/queries.yaml).
SELECT kind, name, pending, failed, delivered_total AS delivered, retried_total AS retried,
       failed_total AS failed_for_good, round((lag_p50_seconds * 1000)::numeric, 1) AS lag_p50_ms
  FROM outbox_metrics();
\echo
\echo == And the guard: outbox.require_transaction = error refuses a publish outside a transaction
\set ON_ERROR_STOP 0
SELECT outbox_publish('user.created', '{"id": 5}');
SQL

if [ $keep = 1 ]; then
    echo
    echo "The cluster is still running. Connect with:"
    echo "  $pbin/psql -h $work -p $port -U postgres demo"
    echo "Stop it with:"
    echo "  $pbin/pg_ctl -D $data stop"
fi
