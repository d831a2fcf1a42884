-- outbox_metrics(): the states from the tables and the counters from shared
-- memory, after a known sequence of publish, claim, complete, fail, retry,
-- reclaim; what a rolled-back transaction or subtransaction counted is not
-- kept; outbox_metrics_reset(); who may read it. The relay is off here
-- (regress.conf): the consumers' side is counted here, the relay's and the
-- sink's in TAP (047).
-- In a database of its own: the counters are per database, and the other
-- tests' events stay out of the states.
CREATE DATABASE outbox_metrics_test;
\c outbox_metrics_test
CREATE EXTENSION outbox;
SET outbox.require_transaction = off;
SET outbox.max_retries = 1;
SELECT outbox_metrics_reset() >= 0 AS reset;

-- Nothing yet: the total row alone, all zero.
SELECT kind, name, pending, due, scheduled, in_flight, failed, oldest_pending_age_seconds,
       delivered_total, failed_total, retried_total, reclaimed_total, lag_p50_seconds, lag_seconds_count
  FROM outbox_metrics();

CREATE FUNCTION on_any(e outbox_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
SELECT outbox_subscribe('audit', 'order.*', 'on_any');
SELECT count(outbox_publish('order.created', jsonb_build_object('n', n))) FROM generate_series(1, 3) n;
SELECT outbox_publish('order.later', '{}', delay => '1 hour') IS NOT NULL AS published;
SELECT count(outbox_publish('job.run', jsonb_build_object('n', n))) FROM generate_series(1, 6) n;

-- Pending per subscription: its events not handed over yet (3 due, 1 later).
SELECT kind, name, sink, paused, pending, due, scheduled, in_flight, failed,
       oldest_pending_age_seconds >= 0 AS has_age
  FROM outbox_metrics() WHERE kind = 'subscription';

-- A consumer completes two job.run events, fails one (a retry), fails one
-- for good (max_retries 1: on its second attempt).
CREATE TEMP TABLE c1 AS SELECT * FROM outbox_claim(4, consumer => 'billing', types => ARRAY['job.run']);
SELECT outbox_complete((SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM c1 ORDER BY id LIMIT 2) x),
                       (SELECT lease_token FROM c1 LIMIT 1));
SELECT outbox_fail((SELECT id FROM c1 ORDER BY id OFFSET 2 LIMIT 1), (SELECT lease_token FROM c1 LIMIT 1),
                   'try again', retry_in => '0 s');
SELECT outbox_fail((SELECT id FROM c1 ORDER BY id OFFSET 3 LIMIT 1), (SELECT lease_token FROM c1 LIMIT 1),
                   'bad', retryable => false);
SELECT kind, name, in_flight, delivered_total, failed_total, retried_total, reclaimed_total,
       lag_p50_seconds >= 0 AS p50, lag_p99_seconds >= lag_p50_seconds AS p99, lag_max_seconds >= lag_p99_seconds AS max,
       lag_seconds_count, lag_seconds_bucket[array_length(lag_seconds_bucket, 1)] AS inf_bucket,
       lag_seconds_sum >= 0 AS sum, counters_since <= now() AS since
  FROM outbox_metrics() WHERE kind <> 'subscription';

-- The histogram: bounds ascending up to +Infinity, cumulative counts.
SELECT lag_seconds[1] AS first_bound, lag_seconds[array_length(lag_seconds, 1)] AS last_bound,
       array_length(lag_seconds, 1) = array_length(lag_seconds_bucket, 1) AS same_length,
       (SELECT bool_and(b >= a) FROM unnest(lag_seconds_bucket[1:array_length(lag_seconds_bucket, 1) - 1],
                                            lag_seconds_bucket[2:]) AS p(a, b)) AS cumulative
  FROM outbox_metrics() WHERE kind = 'consumer';

-- Rolled back: a completion in a transaction that aborts, and one in a
-- savepoint rolled back, are not counted; one in a savepoint released is.
CREATE TEMP TABLE c2 AS SELECT * FROM outbox_claim(3, consumer => 'billing', types => ARRAY['job.run']);
SELECT count(*) AS claimed FROM c2;
BEGIN;
SELECT outbox_complete(ARRAY(SELECT id FROM c2), (SELECT lease_token FROM c2 LIMIT 1));
ROLLBACK;
BEGIN;
SAVEPOINT a;
SELECT outbox_complete(ARRAY(SELECT id FROM c2 ORDER BY id LIMIT 1), (SELECT lease_token FROM c2 LIMIT 1));
ROLLBACK TO SAVEPOINT a;
SAVEPOINT b;
SELECT outbox_complete(ARRAY(SELECT id FROM c2 ORDER BY id LIMIT 2), (SELECT lease_token FROM c2 LIMIT 1));
RELEASE SAVEPOINT b;
COMMIT;
SELECT name, in_flight, delivered_total, failed_total, retried_total FROM outbox_metrics() WHERE kind = 'consumer';

-- A lease that runs out is reclaimed by the next claim: counted for the
-- consumer that held it.
SELECT outbox_publish('job.slow', '{}') IS NOT NULL AS published;
SELECT pg_sleep(1.1) FROM outbox_claim(1, lease => '1 s', consumer => 'slow', types => ARRAY['job.slow']);
SELECT count(*) AS taken FROM outbox_claim(5, consumer => 'billing', types => ARRAY['job.slow']);
SELECT kind, name, delivered_total, failed_total, retried_total, reclaimed_total
  FROM outbox_metrics() WHERE kind <> 'subscription';

-- Transaction claims, with and without a consumer name.
SELECT count(outbox_publish('job.run', '{}')) FROM generate_series(1, 2);
BEGIN;
CREATE TEMP TABLE x0 AS SELECT * FROM outbox_claim_xact(1, 'nightly', ARRAY['job.run']);
SELECT outbox_complete(ARRAY(SELECT id FROM x0), (SELECT lease_token FROM x0));
COMMIT;
BEGIN;
CREATE TEMP TABLE x1 AS SELECT * FROM outbox_claim_xact(1, types => ARRAY['job.run']);
SELECT outbox_complete(ARRAY(SELECT id FROM x1), (SELECT lease_token FROM x1));
COMMIT;
SELECT kind, name, delivered_total FROM outbox_metrics() WHERE kind = 'consumer' ORDER BY name NULLS FIRST;

-- The totals add up the names; the states count every event.
SELECT m.delivered_total = (SELECT sum(delivered_total) FROM outbox_metrics() WHERE kind <> 'total') AS delivered_adds_up,
       m.failed_total, m.due, m.scheduled, m.failed, m.counters_dropped
  FROM outbox_metrics() m WHERE m.kind = 'total';

-- A webhook subscription shows its endpoint and the endpoint's state.
SELECT outbox_create_endpoint('hooks', 'http://127.0.0.1:9/hook') IS NOT NULL AS created;
SELECT outbox_subscribe_webhook('to_hooks', 'order.*', 'hooks');
SELECT outbox_pause_endpoint('hooks');
SELECT name, sink, endpoint, endpoint_state, pending FROM outbox_metrics() WHERE kind = 'subscription';

-- Who may read it: pg_monitor and outbox_admin; nobody else; only
-- outbox_admin resets.
CREATE ROLE metrics_watcher IN ROLE pg_monitor;
CREATE ROLE metrics_nobody;
SET ROLE metrics_watcher;
SELECT count(*) > 0 AS visible FROM outbox_metrics();
SELECT outbox_metrics_reset();
SET ROLE metrics_nobody;
SELECT count(*) FROM outbox_metrics();
RESET ROLE;

-- Reset: the counters start again (the states stay).
SELECT outbox_metrics_reset() > 0 AS cleared;
SELECT kind, name, delivered_total, failed_total, lag_seconds_count, pending > 0 AS still_pending
  FROM outbox_metrics() WHERE kind = 'total';

-- A consumer that settles each event in a savepoint of its own (a PL/pgSQL
-- EXCEPTION block), every 5th rolled back: 16 of 20 counted delivered; the
-- lag is counted when an event is first claimed (20).
SELECT count(outbox_publish('save.point', jsonb_build_object('n', n))) FROM generate_series(1, 20) n;
CREATE TEMP TABLE c3 AS SELECT * FROM outbox_claim(20, consumer => 'careful', types => ARRAY['save.*']);
DO $$
DECLARE
    r record;
    i int := 0;
BEGIN
    FOR r IN SELECT id, lease_token FROM c3 ORDER BY id LOOP
        i := i + 1;
        BEGIN
            PERFORM outbox_complete(ARRAY[r.id], r.lease_token);
            IF i % 5 = 0 THEN
                RAISE EXCEPTION 'undo';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;
SELECT name, in_flight, delivered_total, lag_seconds_count FROM outbox_metrics() WHERE name = 'careful';

-- Seventy consumer names in one transaction: each counted.
SELECT count(outbox_publish('many.one', '{}')) FROM generate_series(1, 70);
DO $$
DECLARE
    r record;
BEGIN
    FOR i IN 1..70 LOOP
        SELECT * INTO r FROM outbox_claim(1, consumer => 'many' || i, types => ARRAY['many.*']);
        PERFORM outbox_complete(ARRAY[r.id], r.lease_token);
    END LOOP;
END
$$;
SELECT count(*) AS names, sum(delivered_total) AS delivered, sum(lag_seconds_count) AS lags
  FROM outbox_metrics() WHERE kind = 'consumer' AND name LIKE 'many%';

-- A consumer named '' is not the one without a name.
SELECT count(outbox_publish('anon.one', '{}')) FROM generate_series(1, 2);
SELECT count(outbox_complete(ARRAY[id], lease_token)) FROM outbox_claim(1, consumer => '', types => ARRAY['anon.*']);
SET application_name = '';
SELECT count(outbox_complete(ARRAY[id], lease_token)) FROM outbox_claim(1, types => ARRAY['anon.*']);
RESET application_name;
SELECT quote_nullable(name) AS name, delivered_total FROM outbox_metrics()
 WHERE kind = 'consumer' AND (name IS NULL OR name = '') ORDER BY name NULLS FIRST;

-- An event published for later: its lag counts from when it was due.
SELECT outbox_publish('later.one', '{}', delay => '1 s') IS NOT NULL AS published;
SELECT pg_sleep(1.3);
SELECT count(*) AS claimed FROM outbox_claim(1, consumer => 'punctual', types => ARRAY['later.*']);
SELECT lag_seconds_count, lag_max_seconds < 1 AS lag_from_due FROM outbox_metrics() WHERE name = 'punctual';

-- Whatever standard_conforming_strings says.
SET standard_conforming_strings = off;
SELECT count(*) > 0 AS works FROM outbox_metrics();
RESET standard_conforming_strings;

-- A member of outbox_admin may reset.
CREATE ROLE metrics_admin IN ROLE outbox_admin;
SET ROLE metrics_admin;
SELECT outbox_metrics_reset() > 0 AS reset_by_admin;
RESET ROLE;
DROP ROLE metrics_admin;

\c contrib_regression
DROP DATABASE outbox_metrics_test;
DROP ROLE metrics_watcher;
DROP ROLE metrics_nobody;
