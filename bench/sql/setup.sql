-- Schema shared by every workload of bench/run.sh (database "bench").
-- The outbox extension lives in schema public; the peers bring their own
-- schemas (pgq, pgboss, graphile_worker).
\set ON_ERROR_STOP on
SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS outbox;

-- The business row of W1 and W3: an order.
CREATE TABLE orders (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The event payload: a JSON object of about 200 bytes. "n" numbers the
-- event, so every consumer can check it saw each event exactly once. STABLE
-- like jsonb_build_object, so that it is inlined into the calling query.
CREATE FUNCTION bench_payload(n bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'n', n,
        'order_id', 1000000 + n,
        'customer', 'customer-' || (n % 1000),
        'email', 'user' || (n % 1000) || '@example.com',
        'amount', round((n % 997) * 1.37, 2),
        'currency', 'EUR',
        'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (n % 50), 'qty', 1 + n % 3)),
        'note', 'benchmark event')
$$;

-- The raw-SQL queue: a bare table of the same shape as outbox_events (same
-- columns and defaults, primary key on id, one index for the claim order),
-- no functions, no triggers. Published with a plain INSERT, drained with
-- DELETE ... RETURNING into an archive of the same shape as the outbox's
-- (partitioned by completed_on, default partition).
CREATE TABLE raw_events (LIKE outbox_events INCLUDING DEFAULTS INCLUDING IDENTITY,
                         PRIMARY KEY (id));
CREATE INDEX raw_events_seq_idx ON raw_events (seq);
CREATE TABLE raw_events_archive (LIKE outbox_events_archive INCLUDING DEFAULTS,
                                 PRIMARY KEY (id, completed_on))
    PARTITION BY RANGE (completed_on);
CREATE TABLE raw_events_archive_default PARTITION OF raw_events_archive DEFAULT;

-- W3: what the no-op subscription handler saw, and when.
CREATE TABLE bench_handled (
    n          bigint NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Subscription handlers for the background worker (W2 worker drain, W3).
-- A no-op, and one that records which event it saw and when.
CREATE FUNCTION bench_noop(e outbox_events) RETURNS void
LANGUAGE sql AS 'SELECT';
CREATE FUNCTION bench_record(e outbox_events) RETURNS void
LANGUAGE sql AS $$ INSERT INTO bench_handled (n) VALUES ((e.payload->>'n')::bigint) $$;
