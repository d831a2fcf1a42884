-- Deliveries: the state of each (event, subscription), and the operator's
-- functions on it (list, retry, discard, replay, statistics); what an event
-- handed to subscriptions becomes for consumers, for the archive and for
-- outbox_unsubscribe(). The relay is off here (regress.conf): deliveries are
-- made by hand as the relay makes them (dispatch: the event active with
-- dispatched_at, a delivery row per subscription). Delivery itself is tested
-- by TAP.
SET outbox.require_transaction = off;
CREATE FUNCTION ev(n int) RETURNS uuid LANGUAGE sql AS
    $$ SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION on_any(e outbox_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
-- As the relay hands event n to subscriptions subs.
CREATE FUNCTION dispatch(n int, subs text[]) RETURNS void LANGUAGE sql AS $$
    UPDATE outbox_events SET status = 'active', dispatched_at = now() WHERE id = ev(n);
    INSERT INTO outbox_deliveries (event_id, subscription, seq, ordering_key)
    SELECT e.id, s, e.seq, e.ordering_key FROM outbox_events e, unnest(subs) s WHERE e.id = ev(n);
$$;

SELECT outbox_subscribe('audit', 'order.*', 'on_any');
SELECT outbox_subscribe('mail', 'order.*', 'on_any');
SELECT outbox_publish('order.created', jsonb_build_object('n', n), id => ev(n),
                      ordering_key => CASE WHEN n <= 2 THEN 'customer-1' END)
  FROM generate_series(1, 4) n;
SELECT dispatch(1, '{audit,mail}'), dispatch(2, '{audit,mail}'), dispatch(3, '{audit}');

-- An event handed to subscriptions is no longer claimed by consumers (its
-- deliveries carry it); one not handed over is.
BEGIN;
SELECT right(id::text, 2) AS claimable FROM outbox_claim_xact(10, types => ARRAY['order.*']);
ROLLBACK;
SELECT right(id::text, 2) AS id, status, dispatched_at IS NOT NULL AS dispatched
  FROM outbox_events WHERE type LIKE 'order.%' ORDER BY seq;
SELECT subscription, paused, pending, scheduled, active, failed, oldest_pending_age IS NOT NULL AS has_age FROM outbox_delivery_stats();

-- One delivery fails for good; the other deliveries of its event are not touched.
UPDATE outbox_deliveries SET status = 'failed', attempts = 4, last_error = 'boom', last_status = 500
 WHERE event_id = ev(1) AND subscription = 'audit';
SELECT right(event_id::text, 2) AS event, subscription, type, ordering_key, attempts, last_error, last_status
  FROM outbox_failed_deliveries();
SELECT count(*) FROM outbox_failed_deliveries('mail');
SELECT count(*) FROM outbox_failed_deliveries('audit', 1);
SELECT subscription, status, attempts FROM outbox_deliveries WHERE event_id = ev(1) ORDER BY subscription;

-- Bad arguments change nothing.
SELECT outbox_failed_deliveries('nope');
SELECT outbox_failed_deliveries(NULL, 0);
SELECT outbox_retry_deliveries(NULL, ARRAY[ev(1)]);
SELECT outbox_retry_deliveries('nope', ARRAY[ev(1)]);
SELECT outbox_retry_deliveries('audit', NULL);
SELECT outbox_retry_deliveries('audit', '{}');
SELECT outbox_retry_deliveries('audit', ARRAY[ev(1), NULL]);
SELECT outbox_retry_deliveries('audit', ARRAY[ev(1), ev(2)]);   -- ev(2) to audit is not failed
SELECT outbox_retry_deliveries('audit', ARRAY[ev(4)]);          -- no such delivery
UPDATE outbox_deliveries SET status = 'active' WHERE event_id = ev(1) AND subscription = 'mail';
SELECT outbox_discard_deliveries('mail', ARRAY[ev(1)]);         -- in flight
UPDATE outbox_deliveries SET status = 'created' WHERE event_id = ev(1) AND subscription = 'mail';
SELECT outbox_discard_deliveries('nope', ARRAY[ev(1)]);
SELECT subscription, status, attempts FROM outbox_deliveries WHERE event_id = ev(1) ORDER BY subscription;

-- Retry: due again at once, attempts from 0.
SELECT outbox_retry_deliveries('audit', ARRAY[ev(1)]);
SELECT subscription, status, attempts, available_at <= now() AS due
  FROM outbox_deliveries WHERE event_id = ev(1) ORDER BY subscription;

-- Discard: the event moves to the archive once every delivery is settled,
-- with each outcome; failed, as one delivery was given up.
UPDATE outbox_deliveries SET status = 'failed', attempts = 4, last_error = 'boom again'
 WHERE event_id = ev(1) AND subscription = 'audit';
SELECT outbox_discard_deliveries('audit', ARRAY[ev(1)]);
SELECT count(*) AS archived FROM outbox_events_archive WHERE id = ev(1);
SELECT outbox_discard_deliveries('audit', ARRAY[ev(1)]);        -- settled already
UPDATE outbox_deliveries SET status = 'completed', attempts = 1, completed_on = now()
 WHERE event_id = ev(1) AND subscription = 'mail';
SELECT _outbox_archive_settled(ARRAY[ev(1)]) AS moved;
SELECT right(id::text, 2) AS id, status, retry_count, last_error, lease_owner,
       jsonb_path_query_array(deliveries, '$.keyvalue().key') AS subscriptions,
       deliveries->'audit'->>'status' AS audit, deliveries->'audit'->>'attempts' AS audit_attempts,
       deliveries->'mail'->>'status' AS mail, deliveries->'mail'->>'attempts' AS mail_attempts
  FROM outbox_events_archive WHERE id = ev(1);
SELECT count(*) AS deliveries_left FROM outbox_deliveries WHERE event_id = ev(1);
-- Settled events only: an event with a delivery pending stays.
SELECT _outbox_archive_settled(ARRAY[ev(2), ev(3)]) AS moved;

-- A pending delivery can be given up too (of a disabled endpoint, say).
SELECT outbox_publish('order.created', '{"n": 5}', id => ev(5));
SELECT dispatch(5, '{mail}');
SELECT outbox_discard_deliveries('mail', ARRAY[ev(5)]);
SELECT right(id::text, 2) AS id, status, deliveries->'mail'->>'status' AS mail
  FROM outbox_events_archive WHERE id = ev(5);

-- Unsubscribing drops the subscription's deliveries not made. An event it
-- alone still had goes back to the queue (3: for consumers or another
-- subscription); one whose other deliveries are settled is archived (2).
UPDATE outbox_deliveries SET status = 'completed', attempts = 1, completed_on = now()
 WHERE event_id = ev(2) AND subscription = 'mail';
SELECT outbox_unsubscribe('audit');
SELECT right(id::text, 2) AS id, status, dispatched_at IS NOT NULL AS dispatched
  FROM outbox_events WHERE type LIKE 'order.%' ORDER BY seq;
SELECT right(id::text, 2) AS id, status, deliveries #- '{mail,completed_on}' AS deliveries,
       deliveries->'mail' ? 'completed_on' AS has_completed_on
  FROM outbox_events_archive WHERE id = ev(2);
SELECT count(*) AS deliveries_left FROM outbox_deliveries;

-- Replay to one subscription: a new event, handed to it alone.
SELECT outbox_replay(ev(1), 'mail') IS NOT NULL AS replayed;
SELECT e.type, e.status, e.dispatched_at IS NOT NULL AS dispatched, e.headers->>'outbox_replay_of' AS replay_of,
       d.subscription, d.status AS delivery
  FROM outbox_events e JOIN outbox_deliveries d ON d.event_id = e.id
 WHERE e.headers ? 'outbox_replay_of';
SELECT outbox_replay(ev(1), 'audit');     -- unsubscribed
SELECT outbox_replay(ev(99), 'mail');     -- not archived
SELECT outbox_replay(NULL, 'mail');
SELECT outbox_replay(ev(1), NULL);
SELECT subscription, paused, pending, scheduled, active, failed, oldest_pending_age IS NOT NULL AS has_age FROM outbox_delivery_stats();

DROP FUNCTION dispatch(int, text[]);
SELECT outbox_unsubscribe('mail');
DELETE FROM outbox_events WHERE type LIKE 'order.%';
DELETE FROM outbox_events_archive WHERE type LIKE 'order.%';
DROP FUNCTION on_any(outbox_events);
DROP FUNCTION ev(int);
