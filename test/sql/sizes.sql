-- Sizes the documentation allows, at their limits: a batch of 100000 events
-- (its ids returned in order, each naming the event published from that
-- element), 100000 ids given to the functions taking an ids array, and a
-- payload (or headers) exactly at outbox.max_payload_size. One more is
-- refused, and refusing changes nothing.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;

-------------------------------------------------------------------------------
-- outbox_publish_batch: 100000 events.
-------------------------------------------------------------------------------
BEGIN;
CREATE TEMP TABLE batch AS
SELECT b.id, b.n
  FROM unnest(outbox_publish_batch(
           (SELECT jsonb_agg(jsonb_build_object('type', 'size.batch', 'payload', jsonb_build_object('n', g)) ORDER BY g)
              FROM generate_series(1, 100000) g))) WITH ORDINALITY AS b(id, n);
COMMIT;
-- One id per element, distinct, and the id at position n names the event
-- published from element n (and events were published in array order).
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids, min(n) AS first, max(n) AS last FROM batch;
SELECT count(*) AS events FROM outbox_events;
SELECT count(*) FILTER (WHERE e.id IS NULL) AS ids_naming_no_event,
       count(*) FILTER (WHERE (e.payload->>'n')::bigint IS DISTINCT FROM b.n) AS ids_out_of_order
  FROM batch b LEFT JOIN outbox_events e ON e.id = b.id;
SELECT count(*) AS seq_out_of_order
  FROM (SELECT (payload->>'n')::bigint AS n, row_number() OVER (ORDER BY seq) AS r FROM outbox_events) x
 WHERE n <> r;
-- One more is refused, and publishes nothing.
SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'size.over', 'payload', g))
                               FROM generate_series(1, 100001) g));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS events FROM outbox_events;

-------------------------------------------------------------------------------
-- 100000 ids: outbox_heartbeat, outbox_release, outbox_complete.
-------------------------------------------------------------------------------
-- No claim hands out more than 10000 events (batch_size), so ten claims take
-- them all; as superuser, put them under the first claim's token, as if one
-- claim had taken them.
CREATE TEMP TABLE claimed (id uuid, lease_token bigint);
CREATE FUNCTION pg_temp.claim_all() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE claimed;
    FOR i IN 1..10 LOOP
        INSERT INTO claimed SELECT c.id, c.lease_token FROM outbox_claim(10000, interval '10 minutes', 'sizes') c;
    END LOOP;
    UPDATE outbox_events e SET lease_token = (SELECT min(lease_token) FROM claimed) WHERE e.status = 'active';
    RETURN (SELECT min(lease_token) FROM claimed);
END
$$;
SELECT pg_temp.claim_all() AS tok \gset
VACUUM outbox_events;  -- (only to keep the test quick)
SELECT count(*) AS claimed, count(DISTINCT id) AS distinct_claimed FROM claimed;
SELECT outbox_heartbeat(ARRAY(SELECT id FROM batch ORDER BY n), :tok, interval '20 minutes') > now() + interval '19 minutes'
       AS heartbeat_extends;
SELECT count(*) FILTER (WHERE keep_alive + make_interval(secs => expire_in_seconds) > now() + interval '19 minutes') AS extended FROM outbox_events;
VACUUM outbox_events;
SELECT outbox_release(ARRAY(SELECT id FROM batch ORDER BY n), :tok) AS released;
SELECT status, count(*) FROM outbox_events GROUP BY status;
SELECT pg_temp.claim_all() AS tok \gset
VACUUM outbox_events;  -- (only to keep the test quick)
-- 100000 ids and more than that are refused (the limit counts the array's
-- elements, duplicates included).
SELECT outbox_complete(ARRAY(SELECT id FROM batch) || ARRAY(SELECT id FROM batch LIMIT 1), :tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY(SELECT id FROM batch ORDER BY n DESC), :tok) AS completed;
SELECT count(*) AS events FROM outbox_events;
SELECT status, count(*) FROM outbox_events_archive GROUP BY status;
SELECT count(*) AS archived_from_batch FROM outbox_events_archive a JOIN batch b ON b.id = a.id;

-------------------------------------------------------------------------------
-- 100000 ids: outbox_retry, outbox_discard (SQL functions, same limit).
-------------------------------------------------------------------------------
-- 100000 failed events (made as superuser: failing them one by one would
-- take long; each is one attempt that failed for good).
TRUNCATE outbox_events, outbox_events_archive;
INSERT INTO outbox_events (id, type, payload, status, retry_count, last_error)
SELECT gen_random_uuid(), 'size.failed', jsonb_build_object('n', g), 'failed', 0, 'gave up'
  FROM generate_series(1, 100000) g;
CREATE TEMP TABLE failed AS SELECT id FROM outbox_events;
SELECT outbox_retry(ARRAY(SELECT id FROM failed) || ARRAY(SELECT id FROM failed LIMIT 1));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(ARRAY(SELECT id FROM failed) || ARRAY(SELECT id FROM failed LIMIT 1));
\echo :LAST_ERROR_SQLSTATE
SELECT status, count(*) FROM outbox_events GROUP BY status;
SELECT outbox_retry(ARRAY(SELECT id FROM failed)) AS retried;
SELECT status, retry_count, last_error, count(*) FROM outbox_events GROUP BY 1, 2, 3;
UPDATE outbox_events SET status = 'failed', last_error = 'gave up again';
SELECT outbox_discard(ARRAY(SELECT id FROM failed)) AS discarded;
SELECT count(*) AS events FROM outbox_events;
SELECT status, last_error, count(*) FROM outbox_events_archive GROUP BY 1, 2;
TRUNCATE outbox_events, outbox_events_archive;

-------------------------------------------------------------------------------
-- outbox.max_payload_size: the size of the jsonb value in bytes, its 4-byte
-- header included (pg_column_size), not the length of its JSON text. At the
-- limit accepted, one byte over refused: payload and headers, outbox_publish
-- and each event of outbox_publish_batch.
-------------------------------------------------------------------------------
SET outbox.max_payload_size = '2kB';
SHOW outbox.max_payload_size;
-- {"data": "xxx..."} with n characters takes n + 20 bytes as jsonb (n + 12 as text).
SELECT pg_column_size(jsonb_build_object('data', repeat('x', 2028))) AS at_limit,
       length(jsonb_build_object('data', repeat('x', 2028))::text) AS its_text,
       pg_column_size(jsonb_build_object('data', repeat('x', 2029))) AS one_over;
SELECT outbox_publish('size.payload', jsonb_build_object('data', repeat('x', 2028))) IS NOT NULL AS published;
SELECT outbox_publish('size.payload', jsonb_build_object('data', repeat('x', 2029)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('size.headers', '{}', headers => jsonb_build_object('data', repeat('x', 2028))) IS NOT NULL AS published;
SELECT outbox_publish('size.headers', '{}', headers => jsonb_build_object('data', repeat('x', 2029)));
\echo :LAST_ERROR_SQLSTATE
-- A JSON string: n characters take n + 12 bytes.
SELECT pg_column_size(to_jsonb(repeat('y', 2036))) AS at_limit;
SELECT outbox_publish('size.string', to_jsonb(repeat('y', 2036))) IS NOT NULL AS published;
SELECT outbox_publish('size.string', to_jsonb(repeat('y', 2037)));
\echo :LAST_ERROR_SQLSTATE
-- In a batch, each event's payload is measured the same way.
SELECT cardinality(outbox_publish_batch(jsonb_build_array(
           jsonb_build_object('type', 'size.batch', 'payload', jsonb_build_object('data', repeat('x', 2028)),
                              'headers', jsonb_build_object('data', repeat('x', 2028))),
           jsonb_build_object('type', 'size.batch', 'payload', jsonb_build_object('data', repeat('x', 2028)))))) AS published;
SELECT outbox_publish_batch(jsonb_build_array(
           jsonb_build_object('type', 'size.batch', 'payload', jsonb_build_object('data', repeat('x', 2028))),
           jsonb_build_object('type', 'size.batch', 'payload', jsonb_build_object('data', repeat('x', 2029)))));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch(jsonb_build_array(
           jsonb_build_object('type', 'size.batch', 'payload', 1, 'headers', jsonb_build_object('data', repeat('x', 2029)))));
\echo :LAST_ERROR_SQLSTATE
SELECT type, pg_column_size(payload::text::jsonb) AS payload_bytes, pg_column_size(headers::text::jsonb) AS headers_bytes
  FROM outbox_events ORDER BY seq;
-- The default, 1MB: 1048576 bytes.
RESET outbox.max_payload_size;
SHOW outbox.max_payload_size;
BEGIN;
SELECT outbox_publish('size.default', jsonb_build_object('data', repeat('x', 1048556))) IS NOT NULL AS published;
SELECT pg_column_size(payload::text::jsonb) AS payload_bytes FROM outbox_events WHERE type = 'size.default';
SAVEPOINT over;
SELECT outbox_publish('size.default', jsonb_build_object('data', repeat('x', 1048557)));
\echo :LAST_ERROR_SQLSTATE
ROLLBACK TO over;
SELECT count(*) AS published FROM outbox_events WHERE type = 'size.default';
ROLLBACK;
TRUNCATE outbox_events, outbox_events_archive;
