-- outbox.require_transaction: the guard against an event published outside
-- the transaction of the change it announces (in autocommit, it would commit
-- on its own, now, even if the business change later fails or rolls back).
--
-- The guard looks at the call itself: it passes inside BEGIN ... COMMIT, in a
-- multi-statement query string (an implicit transaction), and in a statement
-- that has already written something (so the event commits with that write).
-- It cannot know whether the business change is made in the same transaction
-- on the same connection: an application that writes on one connection and
-- publishes inside BEGIN on another is not caught.
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
CREATE TABLE guard_orders (id int PRIMARY KEY);

-- The default is warning.
RESET outbox.require_transaction;
SHOW outbox.require_transaction;

-- off: nothing is said.
SET outbox.require_transaction = off;
SELECT outbox_publish('guard.off', '{}') IS NOT NULL AS published;

-- warning: published, with a WARNING (SQLSTATE 25P01).
SET outbox.require_transaction = warning;
\set VERBOSITY sqlstate
SELECT outbox_publish('guard.warning', '{}') IS NOT NULL AS published;
\set VERBOSITY default
SELECT outbox_publish_batch('[{"type": "guard.warning", "payload": {}}]') IS NOT NULL AS published;

-- error: refused, nothing stored.
SET outbox.require_transaction = error;
SELECT outbox_publish('guard.error', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "guard.error", "payload": {}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT type, count(*) FROM outbox_events GROUP BY type ORDER BY type;

-- Each of these is atomic with the business change, so even error lets it pass:
-- inside BEGIN ... COMMIT,
BEGIN;
INSERT INTO guard_orders VALUES (1);
SELECT outbox_publish('order.created', '{"id": 1}') IS NOT NULL AS published;
COMMIT;
-- a transaction block that has not written anything yet (the write follows),
BEGIN;
SELECT outbox_publish('order.created', '{"id": 2}') IS NOT NULL AS published;
INSERT INTO guard_orders VALUES (2);
COMMIT;
-- a multi-statement query string (one implicit transaction),
INSERT INTO guard_orders VALUES (3) \; SELECT outbox_publish('order.created', '{"id": 3}') IS NOT NULL AS published;
-- the RETURNING clause of the business INSERT,
INSERT INTO guard_orders VALUES (4) RETURNING outbox_publish('order.created', jsonb_build_object('id', id)) IS NOT NULL AS published;
-- a function that writes and then publishes, called in autocommit.
CREATE FUNCTION place_order(order_id int) RETURNS uuid LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO guard_orders VALUES (order_id);
    RETURN outbox_publish('order.created', jsonb_build_object('id', order_id));
END
$$;
SELECT place_order(5) IS NOT NULL AS published;

-- A function that publishes first and writes afterwards is atomic too, but at
-- the moment of the call nothing tells the guard: it is refused. Write first,
-- or call it inside BEGIN ... COMMIT.
CREATE FUNCTION place_order_publish_first(order_id int) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    event_id uuid;
BEGIN
    event_id := outbox_publish('order.created', jsonb_build_object('id', order_id));
    INSERT INTO guard_orders VALUES (order_id);
    RETURN event_id;
END
$$;
SELECT place_order_publish_first(6);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT place_order_publish_first(6) IS NOT NULL AS published;
COMMIT;

-- Every business row has its event, and the refused call left neither.
SELECT o.id, count(e.id) AS events
  FROM guard_orders o LEFT JOIN outbox_events e ON e.type = 'order.created' AND (e.payload->>'id')::int = o.id
 GROUP BY o.id ORDER BY o.id;

-- A rolled-back transaction takes its event with it, whatever the setting.
BEGIN;
INSERT INTO guard_orders VALUES (7);
SELECT outbox_publish('order.created', '{"id": 7}') IS NOT NULL AS published;
ROLLBACK;
SELECT count(*) AS order_7_events FROM outbox_events WHERE payload->>'id' = '7';

-- Other spellings: on/true mean error, false means off; anything else is refused.
SET outbox.require_transaction = on;
SHOW outbox.require_transaction;
SET outbox.require_transaction = false;
SHOW outbox.require_transaction;
SET outbox.require_transaction = sometimes;
\echo :LAST_ERROR_SQLSTATE

DROP FUNCTION place_order(int), place_order_publish_first(int);
DROP TABLE guard_orders;
RESET outbox.require_transaction;
