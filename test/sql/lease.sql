-- What a consumer does with the events it holds: heartbeat, release,
-- complete, fail. Each names events and the lease token of their claim; a
-- lost lease is SQLSTATE OB001, an unknown id P0002, and a call that cannot
-- do all it was asked does nothing.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
ALTER SEQUENCE outbox_lease_token_seq RESTART;  -- lease tokens below are 1, 2, ...

CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(e::text, '|' ORDER BY e.seq) FROM outbox_events e), '')
               || '#' ||
               coalesce((SELECT string_agg(a::text, '|' ORDER BY a.seq) FROM outbox_events_archive a), ''))
$$;

SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'lease.test', 'payload', i) ORDER BY i)
                               FROM generate_series(1, 4) i)) IS NOT NULL AS published;
CREATE TEMP TABLE c AS SELECT * FROM outbox_claim(2, interval '1 minute', 'worker-1');
SELECT min(lease_token) AS tok, min(id::text) AS e1, max(id::text) AS e2 FROM c \gset

-------------------------------------------------------------------------------
-- Heartbeat: the lease runs again from now, for the given length or, without
-- one, for the length of the claim. It returns the new expiry.
-------------------------------------------------------------------------------
SELECT outbox_heartbeat(ARRAY[:'e1', :'e2']::uuid[], :tok, interval '5 minutes')
       = statement_timestamp() + interval '5 minutes' AS extended_5min;
SELECT payload, expire_in_seconds, keep_alive + make_interval(secs => expire_in_seconds) = keep_alive + interval '5 minutes' AS lease_end,
       keep_alive >= started_on AS beat
  FROM outbox_events WHERE status = 'active' ORDER BY seq;
SELECT outbox_heartbeat(ARRAY[:'e1']::uuid[], :tok) = statement_timestamp() + interval '5 minutes' AS extended_again;
-- A repeated id counts once.
SELECT outbox_heartbeat(ARRAY[:'e1', :'e1']::uuid[], :tok, interval '2 minutes')
       = statement_timestamp() + interval '2 minutes' AS extended_2min;

-------------------------------------------------------------------------------
-- Release: give events back untouched (a consumer shutting down): they are
-- due at once and the attempt does not count.
-------------------------------------------------------------------------------
SELECT outbox_release(ARRAY[:'e2']::uuid[], :tok) AS released;
SELECT payload, status, retry_count, lease_owner, lease_token, available_at <= now() AS due
  FROM outbox_events WHERE id = :'e2';

-------------------------------------------------------------------------------
-- Complete: the events move to the archive, with status completed.
-------------------------------------------------------------------------------
SELECT outbox_complete(ARRAY[:'e1', :'e1']::uuid[], :tok) AS completed;
SELECT count(*) AS in_outbox FROM outbox_events WHERE id = :'e1';
SELECT payload, status, retry_count, lease_owner, completed_on >= started_on AS completed_after_start
  FROM outbox_events_archive WHERE id = :'e1';

-------------------------------------------------------------------------------
-- Lost leases. Claim with a 1-second lease, let it expire, and let another
-- consumer reclaim the event: the first consumer's token is refused by every
-- call (OB001), and nothing changes.
-------------------------------------------------------------------------------
TRUNCATE outbox_events, outbox_events_archive, c;
SELECT outbox_publish('slow', '{}', id => '00000000-0000-4000-8000-000000000501') AS slow_id \gset
SELECT lease_token AS slow_tok FROM outbox_claim(1, interval '1 second', 'slow-worker') \gset
SELECT pg_sleep(1.1);
SELECT id = :'slow_id' AS same_event, attempt, lease_token AS fast_tok
  FROM outbox_claim(1, interval '1 minute', 'fast-worker') \gset
SELECT :'same_event' AS same_event, :attempt AS attempt, :slow_tok AS slow_tok, :fast_tok AS fast_tok;
SELECT status, lease_owner, retry_count, last_error FROM outbox_events WHERE id = :'slow_id';
SELECT pg_temp.fingerprint() AS before \gset
SELECT outbox_complete(ARRAY[:'slow_id']::uuid[], :slow_tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY[:'slow_id']::uuid[], :slow_tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release(ARRAY[:'slow_id']::uuid[], :slow_tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail(:'slow_id', :slow_tok, 'timeout');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
-- The new holder completes it; the old token is then refused with the archive named.
SELECT outbox_complete(ARRAY[:'slow_id']::uuid[], :fast_tok) AS completed;
SELECT outbox_complete(ARRAY[:'slow_id']::uuid[], :slow_tok);
\echo :LAST_ERROR_SQLSTATE
-- So is a second complete by the holder itself.
SELECT outbox_complete(ARRAY[:'slow_id']::uuid[], :fast_tok);
\echo :LAST_ERROR_SQLSTATE

-- A lease that ran out but was not yet taken by another claim still holds:
-- the late consumer can heartbeat or complete (the lease end is moved into
-- the past as superuser, standing for the wait).
SELECT outbox_publish('late', '{}', id => '00000000-0000-4000-8000-000000000503') AS late_id \gset
SELECT lease_token AS late_tok FROM outbox_claim(1, interval '1 minute', 'late-worker') \gset
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE id = :'late_id';
SELECT outbox_heartbeat(ARRAY[:'late_id']::uuid[], :late_tok) > now() AS extended;
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE id = :'late_id';
SELECT outbox_complete(ARRAY[:'late_id']::uuid[], :late_tok) AS completed;

-- An event that was released, or failed and is waiting for its retry, is no
-- longer held either.
SELECT outbox_publish('r', '{}', id => '00000000-0000-4000-8000-000000000502') IS NOT NULL AS published;
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(1, interval '1 minute', 'w');
SELECT id AS r_id, lease_token AS r_tok FROM c \gset
SELECT outbox_release(ARRAY[:'r_id']::uuid[], :r_tok) AS released;
SELECT outbox_complete(ARRAY[:'r_id']::uuid[], :r_tok);
\echo :LAST_ERROR_SQLSTATE
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(1, interval '1 minute', 'w');
SELECT id AS f_id, lease_token AS f_tok FROM c \gset
SELECT outbox_fail(:'f_id', :f_tok, 'first failure', retry_in => interval '1 hour') AS status;
SELECT outbox_fail(:'f_id', :f_tok, 'second report of the same attempt');
\echo :LAST_ERROR_SQLSTATE
SELECT retry_count, last_error FROM outbox_events WHERE id = :'f_id';

-------------------------------------------------------------------------------
-- Unknown ids: P0002. All or nothing: one bad id in the list and none of the
-- others is touched.
-------------------------------------------------------------------------------
TRUNCATE outbox_events, outbox_events_archive;
SELECT outbox_publish_batch('[{"type": "t", "payload": 1, "id": "00000000-0000-4000-8000-000000000601"},
                              {"type": "t", "payload": 2, "id": "00000000-0000-4000-8000-000000000602"},
                              {"type": "t", "payload": 3, "id": "00000000-0000-4000-8000-000000000603"}]')
       IS NOT NULL AS published;
TRUNCATE c;
INSERT INTO c SELECT * FROM outbox_claim(2, interval '1 minute', 'w1');
SELECT min(lease_token) AS tok, min(id::text) AS e1, max(id::text) AS e2 FROM c \gset
SELECT id AS other, lease_token AS other_tok FROM outbox_claim(1, interval '1 minute', 'w2') \gset
SELECT pg_temp.fingerprint() AS before \gset
SELECT outbox_complete(ARRAY[:'e1', '00000000-0000-4000-8000-00000000dead']::uuid[], :tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_heartbeat(ARRAY[:'e1', '00000000-0000-4000-8000-00000000dead']::uuid[], :tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_release(ARRAY[:'e1', '00000000-0000-4000-8000-00000000dead']::uuid[], :tok);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail('00000000-0000-4000-8000-00000000dead', :tok, 'x');
\echo :LAST_ERROR_SQLSTATE
-- An event held under another token (another claim) is refused the same way.
SELECT outbox_complete(ARRAY[:'e1', :'e2', :'other']::uuid[], :tok) IS NULL AS refused;
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_fail(:'other', :tok, 'not mine');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
SELECT status, count(*) FROM outbox_events GROUP BY status;

-- Calls inside a transaction that rolls back change nothing either.
BEGIN;
SELECT outbox_complete(ARRAY[:'e1', :'e2']::uuid[], :tok) AS completed;
ROLLBACK;
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
SELECT outbox_complete(ARRAY[:'e1', :'e2']::uuid[], :tok) AS completed;
SELECT outbox_complete(ARRAY[:'other']::uuid[], :other_tok) AS completed;
SELECT status, count(*) FROM outbox_events_archive GROUP BY status;
