-- outbox_claim: batch size, lease, consumer name, type patterns, oldest
-- first, delayed events, and ordering keys (head of line).
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;

-- Five events published in one transaction: claimed in publish order.
SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'n', 'payload', i) ORDER BY i)
                               FROM generate_series(1, 5) i)) IS NOT NULL AS published;

-- batch_size: at most that many, oldest first; every row of one claim shares
-- one lease token, the lease ends lease after the claim, attempt 1.
SELECT payload, attempt, lease_expires_at = statement_timestamp() + interval '45 seconds' AS lease_45s
  FROM outbox_claim(2, interval '45 seconds', 'claimer');
SELECT count(DISTINCT lease_token) AS tokens, min(lease_owner) AS owner,
       min(expire_in_seconds) AS expire_in_seconds, bool_and(started_on = keep_alive) AS started
  FROM outbox_events WHERE status = 'active';
-- The next claim skips events that are leased, and gets a new token.
CREATE TEMP TABLE c2 AS SELECT * FROM outbox_claim(2, interval '45 seconds', 'claimer');
SELECT payload FROM c2 ORDER BY payload;
SELECT (SELECT min(lease_token) FROM c2) >
       (SELECT min(lease_token) FROM outbox_events WHERE payload IN ('1', '2')) AS token_increases;

-- Defaults: outbox.batch_size events, a lease of outbox.processing_timeout,
-- the consumer named by application_name.
TRUNCATE outbox_events;
SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'n', 'payload', i) ORDER BY i)
                               FROM generate_series(1, 5) i)) IS NOT NULL AS published;
SET outbox.batch_size = 3;
SET outbox.processing_timeout = '2min';
SET application_name = 'billing-worker';
SELECT payload, lease_expires_at = statement_timestamp() + interval '2 minutes' AS lease_2min FROM outbox_claim();
SELECT payload, lease_owner FROM outbox_events WHERE status = 'active' ORDER BY seq;
-- An empty application_name means an unnamed consumer.
SET application_name = '';
SELECT payload FROM outbox_claim(1);
SELECT payload, lease_owner IS NULL AS unnamed FROM outbox_events WHERE payload = '4';
RESET application_name;
RESET outbox.batch_size;
RESET outbox.processing_timeout;
-- A lease is whole seconds, rounded up (never shorter than asked).
SELECT payload, lease_expires_at = statement_timestamp() + interval '2 seconds' AS lease_2s
  FROM outbox_claim(1, interval '1.5 seconds');

-- Nothing due: an empty result, not an error.
SELECT count(*) AS claimed FROM outbox_claim(10);

-- A claim rolled back claims nothing.
TRUNCATE outbox_events;
SELECT outbox_publish('rollback.test', '{}') IS NOT NULL AS published;
BEGIN;
SELECT type FROM outbox_claim(10, interval '1 minute', 'c');
ROLLBACK;
SELECT status, lease_token IS NULL AS no_token FROM outbox_events;

-------------------------------------------------------------------------------
-- Type patterns: exact names, '*' for any run of characters; LIKE's own
-- metacharacters (% _ \) in type names are plain characters.
-------------------------------------------------------------------------------
TRUNCATE outbox_events;
SELECT outbox_publish_batch($$[
    {"type": "user.created", "payload": 1},
    {"type": "user.deleted", "payload": 2},
    {"type": "users.imported", "payload": 3},
    {"type": "order_paid", "payload": 4},
    {"type": "orderXpaid", "payload": 5},
    {"type": "order%paid", "payload": 6},
    {"type": "100%", "payload": 7},
    {"type": "back\\slash", "payload": 8},
    {"type": "backslash", "payload": 9}
]$$) IS NOT NULL AS published;
SELECT type FROM outbox_claim(10, types => ARRAY['order_paid']);
SELECT type FROM outbox_claim(10, types => ARRAY['order%paid', '100%']);
SELECT type FROM outbox_claim(10, types => ARRAY['back\slash']);
SELECT type FROM outbox_claim(10, types => ARRAY['user.*']);
SELECT type FROM outbox_claim(10, types => ARRAY['nothing.*', '*X*']);
SELECT type FROM outbox_claim(10, types => ARRAY['*']);
SELECT count(*) AS left_unclaimed FROM outbox_events WHERE status = 'created';

-------------------------------------------------------------------------------
-- Only due events: a delayed event waits for its time.
-------------------------------------------------------------------------------
TRUNCATE outbox_events;
SELECT outbox_publish('later', '{}', delay => interval '1 hour') AS later_id \gset
SELECT outbox_publish('now', '{}') IS NOT NULL AS published;
SELECT type FROM outbox_claim(10);
SELECT type FROM outbox_claim(10);
-- An hour passes (simulated as superuser by moving the delivery time back).
UPDATE outbox_events SET available_at = now() - interval '1 second' WHERE id = :'later_id';
SELECT type FROM outbox_claim(10);

-- Oldest first means earliest due: a delivery time in the past comes first.
TRUNCATE outbox_events;
SELECT outbox_publish('second', '{}') IS NOT NULL AS published;
SELECT outbox_publish('first', '{}', deliver_at => now() - interval '1 minute') IS NOT NULL AS published;
SELECT type FROM outbox_claim(10);

-------------------------------------------------------------------------------
-- Ordering keys: an event is never handed out while an earlier event with
-- its key is still in outbox_events (pending, in flight, waiting for a retry,
-- or failed). Other keys and events without a key are not held up.
-------------------------------------------------------------------------------
TRUNCATE outbox_events;
SELECT outbox_publish_batch($$[
    {"type": "k", "payload": "a1", "ordering_key": "A"},
    {"type": "k", "payload": "a2", "ordering_key": "A"},
    {"type": "k", "payload": "a3", "ordering_key": "A"},
    {"type": "k", "payload": "b1", "ordering_key": "B"},
    {"type": "k", "payload": "free", "ordering_key": null},
    {"type": "k", "payload": "b2", "ordering_key": "B"}
]$$) IS NOT NULL AS published;
-- Only the head of each key, plus the event without a key.
CREATE TEMP TABLE c AS SELECT * FROM outbox_claim(10, interval '1 minute', 'c');
SELECT payload FROM c ORDER BY payload;
-- While a1 is in flight, a2 waits.
SELECT count(*) AS claimed FROM outbox_claim(10);
-- a1 released (given back): it is handed out again, still before a2.
SELECT outbox_release(ARRAY(SELECT id FROM c WHERE payload = '"a1"'), (SELECT min(lease_token) FROM c)) AS released;
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(10, interval '1 minute', 'c');
SELECT payload, attempt FROM c;
-- a1 and b1 completed: a2 and b2 come next.
SELECT outbox_complete(ARRAY(SELECT id FROM c), (SELECT min(lease_token) FROM c)) AS completed;
SELECT outbox_complete(ARRAY(SELECT id FROM outbox_events WHERE payload IN ('"b1"', '"free"')),
                       (SELECT lease_token FROM outbox_events WHERE payload = '"b1"')) AS completed;
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(10, interval '1 minute', 'c');
SELECT payload FROM c ORDER BY payload;
-- a2 fails and waits for its retry: a3 still waits behind it.
SELECT outbox_fail((SELECT id FROM c WHERE payload = '"a2"'), (SELECT min(lease_token) FROM c),
                   'downstream unavailable', retry_in => interval '1 hour') AS status;
SELECT count(*) AS claimed FROM outbox_claim(10);
-- a2 fails for good (not retryable): a3 is still held, the failed event
-- blocks its key until an operator retries or discards it.
UPDATE outbox_events SET available_at = now() WHERE payload = '"a2"'; -- the hour passed (superuser)
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(10, interval '1 minute', 'c');
SELECT payload, attempt FROM c;
SELECT outbox_fail((SELECT id FROM c), (SELECT lease_token FROM c), 'bad data', retryable => false) AS status;
SELECT count(*) AS claimed FROM outbox_claim(10);
-- outbox_retry puts a2 back in the queue, first of its key again.
SELECT outbox_retry(ARRAY(SELECT id FROM outbox_events WHERE payload = '"a2"')) AS retried;
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(10, interval '1 minute', 'c');
SELECT payload, attempt FROM c;
SELECT outbox_fail((SELECT id FROM c), (SELECT lease_token FROM c), 'bad data again', retryable => false) AS status;
-- outbox_discard moves a2 to the archive: a3 is free to go.
SELECT outbox_discard(ARRAY(SELECT id FROM outbox_events WHERE payload = '"a2"')) AS discarded;
SELECT payload FROM outbox_claim(10);
SELECT payload, status FROM outbox_events_archive ORDER BY seq;
