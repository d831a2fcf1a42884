-- outbox_publish and outbox_publish_batch: every option, caller-chosen ids,
-- transactions, and the batch form (a bad element publishes nothing).
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;

-- What is stored (and what nothing stored looks like), as one checksum.
CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(e::text, '|' ORDER BY e.seq) FROM outbox_events e), '')
               || '#' ||
               coalesce((SELECT string_agg(a::text, '|' ORDER BY a.seq) FROM outbox_events_archive a), ''))
$$;

-- The simplest event: type and payload. The id is a UUIDv7 (time-ordered).
BEGIN;
SELECT outbox_publish('user.created', '{"id": 1}') AS id1 \gset
SELECT substr(:'id1', 15, 1) AS uuid_version;
SELECT type, payload, headers, ordering_key, status, retry_count, last_error,
       available_at = now() AS due_now, occurred_at = now() AS occurred_now,
       lease_owner, lease_token, next_retry_at
  FROM outbox_events WHERE id = :'id1';
COMMIT;

-- Ids of one session increase with time.
BEGIN;
SELECT outbox_publish('user.created', '{"id": 2}') AS id2 \gset
SELECT outbox_publish('user.created', '{"id": 3}') AS id3 \gset
COMMIT;
SELECT :'id1'::uuid < :'id2'::uuid AND :'id2'::uuid < :'id3'::uuid AS ids_increase;

-- Every option, by name.
BEGIN;
SELECT outbox_publish(type => 'order.paid', payload => '{"order": 7}', ordering_key => 'order-7',
                      headers => '{"trace_id": "abc", "source": "shop"}',
                      id => '00000000-0000-4000-8000-000000000001') AS id;
SELECT type, payload, headers, ordering_key, available_at = now() AS due_now
  FROM outbox_events WHERE id = '00000000-0000-4000-8000-000000000001';
COMMIT;

-- A payload can be any JSON value, including JSON null; headers are an object.
BEGIN;
SELECT outbox_publish('scalar.event', '42') IS NOT NULL AS published,
       outbox_publish('null.event', 'null') IS NOT NULL AS published_null,
       outbox_publish('array.event', '[1, 2]', headers => '{}') IS NOT NULL AS published_array;
SELECT type, payload, jsonb_typeof(payload) AS kind, headers FROM outbox_events
 WHERE type IN ('scalar.event', 'null.event', 'array.event') ORDER BY seq;
COMMIT;

-- Delivery time: deliver_at (a time) or delay (from the start of the transaction).
BEGIN;
SELECT outbox_publish('reminder', '{}', deliver_at => now() + interval '1 hour') AS at_id \gset
SELECT outbox_publish('reminder', '{}', delay => interval '10 minutes') AS delay_id \gset
SELECT outbox_publish('reminder', '{}', delay => interval '0') AS zero_id \gset
SELECT outbox_publish('reminder', '{}', deliver_at => now() - interval '1 hour') AS past_id \gset
SELECT id = :'at_id' AS deliver_at, available_at - now() AS due_in
  FROM outbox_events WHERE id IN (:'at_id', :'delay_id', :'zero_id', :'past_id') ORDER BY seq;
COMMIT;
-- Not both.
SELECT outbox_publish('reminder', '{}', deliver_at => now(), delay => interval '1 minute');
\echo :LAST_ERROR_SQLSTATE
-- NULL options mean "not given".
BEGIN;
SELECT outbox_publish('plain', '{}', NULL, NULL, NULL, NULL, NULL) AS plain_id \gset
SELECT headers, ordering_key, available_at = now() AS due_now FROM outbox_events WHERE id = :'plain_id';
COMMIT;

-- The event belongs to the caller's transaction: gone with a rollback, and
-- with a rolled-back savepoint.
SELECT count(*) AS before_rollback FROM outbox_events \gset
BEGIN;
SELECT outbox_publish('rolled.back', '{}') IS NOT NULL AS published;
ROLLBACK;
BEGIN;
SELECT outbox_publish('kept', '{}') IS NOT NULL AS published;
SAVEPOINT s;
SELECT outbox_publish('rolled.back', '{}') IS NOT NULL AS published;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT count(*) - :before_rollback AS added, count(*) FILTER (WHERE type = 'rolled.back') AS rolled_back
  FROM outbox_events;

-- A caller-chosen id can be published once. A repeat is SQLSTATE 23505,
-- whether the first one is still pending ...
SELECT pg_temp.fingerprint() AS before \gset
SELECT outbox_publish('order.paid', '{"order": 7}', id => '00000000-0000-4000-8000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
-- ... or already delivered (in the archive).
SELECT id, lease_token FROM outbox_claim(1, types => ARRAY['order.paid']) \gset
SELECT outbox_complete(ARRAY[:'id'::uuid], :lease_token) AS completed;
SELECT pg_temp.fingerprint() AS before \gset
SELECT outbox_publish('order.paid', '{"order": 7}', id => '00000000-0000-4000-8000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
-- In a transaction, a repeat can be caught and treated as done.
BEGIN;
DO $$
BEGIN
    PERFORM outbox_publish('order.paid', '{"order": 7}', id => '00000000-0000-4000-8000-000000000001');
EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'already published: %', SQLERRM;
END
$$;
COMMIT;

-- Ordering key and headers are stored as given.
BEGIN;
SELECT outbox_publish('account.debited', '{"n": 1}', 'account-1', '{"v": 2}') AS k1 \gset
SELECT outbox_publish('account.debited', '{"n": 2}', 'account-1') AS k2 \gset
SELECT ordering_key, payload, headers FROM outbox_events WHERE id IN (:'k1', :'k2') ORDER BY seq;
COMMIT;

-------------------------------------------------------------------------------
-- Batch form: one call, one JSON array, the ids in the array's order.
-------------------------------------------------------------------------------
TRUNCATE outbox_events, outbox_events_archive;
BEGIN;
SELECT outbox_publish_batch($$[
    {"type": "a", "payload": {"n": 1}},
    {"type": "b", "payload": {"n": 2}, "ordering_key": "k", "headers": {"h": 1}},
    {"type": "c", "payload": {"n": 3}, "delay": "5 minutes"},
    {"type": "d", "payload": {"n": 4}, "deliver_at": "2999-01-01T00:00:00Z"},
    {"type": "e", "payload": {"n": 5}, "id": "00000000-0000-4000-8000-0000000000e5"},
    {"type": "f", "payload": null, "ordering_key": null, "headers": null, "delay": null,
     "deliver_at": null, "id": null}
]$$) AS ids \gset
SELECT cardinality(:'ids'::uuid[]) AS n,
       (SELECT array_agg(id ORDER BY seq) FROM outbox_events) = :'ids'::uuid[] AS ids_in_order;
SELECT type, payload, ordering_key, headers,
       CASE WHEN type = 'd' THEN available_at = '2999-01-01 00:00:00+00' END AS at_2999,
       CASE WHEN type <> 'd' THEN available_at - now() END AS due_in,
       id = '00000000-0000-4000-8000-0000000000e5' AS caller_id
  FROM outbox_events ORDER BY seq;
COMMIT;
-- An empty array publishes nothing.
SELECT outbox_publish_batch('[]') AS ids;

-- Every bad element is refused, names its position, and publishes nothing:
-- not even the good elements before it.
SELECT pg_temp.fingerprint() AS before \gset
\set SHOW_CONTEXT errors
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, 42]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"payload": {}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "", "payload": {}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": 7, "payload": {}}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "headers": [1]}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "ordering_key": ""}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "ordering_key": 5}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "delay": "soon"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "delay": "-1 minute"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "deliver_at": "tomorrowish"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "deliver_at": "infinity"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "deliver_at": "2030-01-01", "delay": "1 hour"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "id": "not-a-uuid"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "colour": "red"}]');
\echo :LAST_ERROR_SQLSTATE
-- A repeated id, within the batch or already published.
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}, "id": "00000000-0000-4000-8000-0000000000aa"},
                              {"type": "x", "payload": {}, "id": "00000000-0000-4000-8000-0000000000aa"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "ok", "payload": {}}, {"type": "x", "payload": {}, "id": "00000000-0000-4000-8000-0000000000e5"}]');
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT never
-- Not an array at all.
SELECT outbox_publish_batch('{"type": "x", "payload": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('"x"');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
