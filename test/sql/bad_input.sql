-- Bad input: each is refused with a clear error and a real SQLSTATE, and
-- leaves everything stored as it was.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
ALTER SEQUENCE outbox_lease_token_seq RESTART;

CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(e::text, '|' ORDER BY e.seq) FROM outbox_events e), '')
               || '#' ||
               coalesce((SELECT string_agg(a::text, '|' ORDER BY a.seq) FROM outbox_events_archive a), ''))
$$;

-- Some state to protect: a pending event, a claimed one, an archived one.
SELECT outbox_publish('keep', '1', id => '00000000-0000-4000-8000-000000000001') IS NOT NULL AS published;
SELECT outbox_publish('keep', '2', id => '00000000-0000-4000-8000-000000000002') IS NOT NULL AS published;
SELECT outbox_publish('keep', '3', id => '00000000-0000-4000-8000-000000000003') IS NOT NULL AS published;
SELECT lease_token AS tok1 FROM outbox_claim(1, interval '10 minutes', 'bad-input') \gset
SELECT lease_token AS tok2 FROM outbox_claim(1, interval '10 minutes', 'bad-input') \gset
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000001']::uuid[], :tok1) AS completed;
SELECT pg_temp.fingerprint() AS before \gset

-- outbox_publish: type
SELECT outbox_publish(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish(repeat('t', 256), '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish(repeat('é', 128), '{}');
\echo :LAST_ERROR_SQLSTATE
-- payload
SELECT outbox_publish('t', NULL);
\echo :LAST_ERROR_SQLSTATE
SET outbox.max_payload_size = '2kB';
SELECT outbox_publish('t', jsonb_build_object('data', repeat('x', 3000)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', headers => jsonb_build_object('h', repeat('x', 3000)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch(jsonb_build_array(jsonb_build_object('type', 't', 'payload', repeat('x', 3000))));
\echo :LAST_ERROR_SQLSTATE
RESET outbox.max_payload_size;
-- headers
SELECT outbox_publish('t', '{}', headers => '[]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', headers => '"text"');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', headers => 'null');
\echo :LAST_ERROR_SQLSTATE
-- ordering key
SELECT outbox_publish('t', '{}', ordering_key => '');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', ordering_key => repeat('k', 256));
\echo :LAST_ERROR_SQLSTATE
-- delivery time
SELECT outbox_publish('t', '{}', delay => interval '-1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', delay => interval '300000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish_batch('[{"type": "t", "payload": {}, "delay": "300000 years"}]');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', deliver_at => 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_publish('t', '{}', deliver_at => '-infinity');
\echo :LAST_ERROR_SQLSTATE
-- a batch too large
SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 't', 'payload', 1))
                               FROM generate_series(1, 100001)));
\echo :LAST_ERROR_SQLSTATE

-- outbox_claim: batch size, lease, consumer, types
SELECT outbox_claim(0);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(-5);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(10001);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(2147483647);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '0');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '0.5 seconds');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '25 hours');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '1 year');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, interval '1 minute', repeat('c', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, types => '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, types => ARRAY['user.*', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, types => ARRAY['']);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1, types => '{{a},{b}}');
\echo :LAST_ERROR_SQLSTATE
-- outbox.batch_size and outbox.processing_timeout have the same bounds.
SET outbox.batch_size = 0;
\echo :LAST_ERROR_SQLSTATE
-- (the range in PostgreSQL's message carries units from 18 on: the SQLSTATE only)
\set VERBOSITY sqlstate
SET outbox.processing_timeout = '25h';
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE

-- heartbeat, release, complete, fail: ids and tokens
SELECT outbox_complete(NULL, :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete('{}', :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000002', NULL]::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete('{{00000000-0000-4000-8000-000000000002}}'::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-00000000dead']::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], :tok1);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000003']::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY['00000000-0000-4000-8000-000000000001']::uuid[], :tok1);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_complete(ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 100001)), :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(NULL, :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], :tok2, interval '0');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], :tok2, interval '2 days');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY['00000000-0000-4000-8000-00000000dead']::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release(NULL, :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release('{}', :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[], NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release(ARRAY['00000000-0000-4000-8000-000000000003']::uuid[], :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail(NULL, :tok2, 'e');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000002', NULL, 'e');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000002', :tok2, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000002', :tok2, 'e', retry_in => interval '-1 minute');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000002', :tok2, 'e', retry_in => interval '300000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000002', :tok2, 'e', retryable => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-00000000dead', :tok2, 'e');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-000000000003', :tok2, 'e');
\echo :LAST_ERROR_SQLSTATE

-- operations
SELECT outbox_failed_events(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY['00000000-0000-4000-8000-000000000002']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(ARRAY['00000000-0000-4000-8000-00000000dead']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard('{}');
\echo :LAST_ERROR_SQLSTATE
-- outbox_retry and outbox_discard refuse ids as the C functions do (above):
-- multi-dimensional, more than 100000, NULL elements.
SELECT outbox_retry('{{00000000-0000-4000-8000-000000000002}}'::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard('{{00000000-0000-4000-8000-000000000002},{00000000-0000-4000-8000-000000000003}}'::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 100001)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 100001)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY[NULL]::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(ARRAY['00000000-0000-4000-8000-000000000002', NULL]::uuid[]);
\echo :LAST_ERROR_SQLSTATE
-- the same order of checks as the C functions: too many before a NULL element
SELECT outbox_complete(ARRAY(SELECT NULL::uuid FROM generate_series(1, 100001)), :tok2);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY(SELECT NULL::uuid FROM generate_series(1, 100001)));
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_replay('00000000-0000-4000-8000-00000000dead');
\echo :LAST_ERROR_SQLSTATE

-- Nothing of the above changed anything.
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
SELECT id, status, lease_token = :tok2 AS held FROM outbox_events ORDER BY seq;

-- Leave the outbox empty for the tests that follow.
TRUNCATE outbox_events, outbox_events_archive;
