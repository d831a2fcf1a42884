-- outbox_claim_xact(): events held by the claiming transaction (row locks),
-- not by a lease. Nothing is written to claim; complete, fail or release
-- settle them inside the same transaction; a rollback (or a dead consumer)
-- leaves them due again with no attempt counted.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
ALTER SEQUENCE outbox_lease_token_seq RESTART;  -- tokens below are 1, 2, ...

CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(e::text, '|' ORDER BY e.seq) FROM outbox_events e), '')
               || '#' ||
               coalesce((SELECT string_agg(a::text, '|' ORDER BY a.seq) FROM outbox_events_archive a), ''))
$$;

SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'xact.test', 'payload', i,
                                                                   'id', '00000000-0000-4000-8000-00000000000' || i)
                                                ORDER BY i)
                               FROM generate_series(1, 6) i)) IS NOT NULL AS published;

-------------------------------------------------------------------------------
-- Outside a transaction block the claim would end with its own statement.
-------------------------------------------------------------------------------
SELECT * FROM outbox_claim_xact(1);
SELECT count(*) AS still_created FROM outbox_events WHERE status = 'created';

-------------------------------------------------------------------------------
-- Claim and complete in one transaction: oldest first, attempt 1, one token
-- for the claim, no expiry; the table is not written until complete.
-------------------------------------------------------------------------------
BEGIN;
CREATE TEMP TABLE c ON COMMIT DROP AS SELECT * FROM outbox_claim_xact(2, 'tx-worker');
SELECT payload, attempt, lease_token, lease_expires_at FROM c ORDER BY payload::int;
SELECT payload, status, lease_token, started_on FROM outbox_events WHERE id IN (SELECT id FROM c) ORDER BY seq;
-- A second claim in the same transaction skips what the first one holds
-- (its own row locks would not make SKIP LOCKED skip them), and so does a
-- lease claim.
SELECT payload, attempt, lease_token FROM outbox_claim_xact(1, 'tx-worker');
SELECT payload, lease_token FROM outbox_claim(1, interval '1 minute', 'lease-worker');
-- There is no lease to extend: heartbeat checks the events and says NULL.
SELECT outbox_heartbeat((SELECT array_agg(id) FROM c), 1) AS no_expiry;
SELECT outbox_complete((SELECT array_agg(id) FROM c), 1) AS completed;
-- Once settled, an event cannot be settled again in this transaction.
SELECT outbox_complete((SELECT array_agg(id) FROM c), 1);
ROLLBACK;
-- The rollback undid the complete and the lease claim; the events are due
-- again, no attempt counted, the token refers to nothing any more.
SELECT payload, status, retry_count, lease_token FROM outbox_events ORDER BY seq;

BEGIN;
SELECT array_agg(id ORDER BY payload::int) AS ids, min(lease_token) AS tok FROM outbox_claim_xact(2, 'tx-worker') \gset
SELECT outbox_complete(:'ids', :tok) AS completed;
COMMIT;
SELECT payload, status, retry_count, lease_owner, started_on <= completed_on AS claimed_before_completed
  FROM outbox_events_archive ORDER BY seq;
SELECT count(*) AS left_in_outbox FROM outbox_events;
-- After the transaction, its token holds nothing.
SELECT outbox_complete(:'ids', :tok);

-------------------------------------------------------------------------------
-- Wrong tokens and ids: refused, nothing changes.
-------------------------------------------------------------------------------
BEGIN;
SELECT array_agg(id ORDER BY payload::int) AS ids, min(lease_token) AS tok FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT array_agg(id ORDER BY payload::int) AS ids2, min(lease_token) AS tok2 FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT pg_temp.fingerprint() AS before \gset
SAVEPOINT s;
-- An event of another claim of this transaction.
SELECT outbox_complete(:'ids2', :tok);
ROLLBACK TO s;
-- A mix of this claim's event and one it does not hold.
SELECT outbox_complete(array_cat(:'ids'::uuid[], :'ids2'::uuid[]), :tok2);
ROLLBACK TO s;
SELECT outbox_fail((:'ids2'::uuid[])[1], :tok, 'boom');
ROLLBACK TO s;
SELECT pg_temp.fingerprint() = :'before' AS unchanged;

-------------------------------------------------------------------------------
-- Savepoints: a settlement rolled back to a savepoint can be made again; a
-- claim rolled back to a savepoint is forgotten (PostgreSQL released its row
-- locks).
-------------------------------------------------------------------------------
SAVEPOINT a;
SELECT outbox_complete(:'ids', :tok) AS completed_in_savepoint;
ROLLBACK TO a;
SELECT outbox_complete(:'ids', :tok) AS completed_again;
SAVEPOINT b;
SELECT count(*) AS claimed_in_savepoint FROM outbox_claim_xact(1, 'tx-worker');
ROLLBACK TO b;
SELECT lease_token AS tok3 FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT :tok3 > :tok2 AS new_token;
-- Release: nothing to undo; the events stay locked until the transaction ends.
SELECT outbox_release(:'ids2', :tok2) AS released;
SAVEPOINT c;
SELECT outbox_complete(:'ids2', :tok2);
ROLLBACK TO c;
COMMIT;
SELECT payload, status FROM outbox_events_archive ORDER BY seq;
SELECT payload, status, retry_count FROM outbox_events ORDER BY seq;

-------------------------------------------------------------------------------
-- Fail: the attempt counts and a retry is scheduled (backoff, or retry_in),
-- in the same transaction; not retryable, or out of attempts: failed.
-------------------------------------------------------------------------------
SET outbox.max_retries = 1;
BEGIN;
SELECT id, lease_token AS tok FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT outbox_fail(:'id', :tok, 'handler said no', retry_in => interval '1 hour') AS status;
SELECT outbox_fail(:'id', :tok, 'again');
ROLLBACK;
SELECT payload, retry_count, last_error FROM outbox_events WHERE id = :'id';
BEGIN;
SELECT id, lease_token AS tok FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT outbox_fail(:'id', :tok, 'handler said no', retry_in => interval '1 hour') AS status;
COMMIT;
SELECT payload, status, retry_count, last_error, available_at > now() + interval '59 minutes' AS retry_later
  FROM outbox_events WHERE id = :'id';
BEGIN;
SELECT id, payload, lease_token AS tok FROM outbox_claim_xact(1, 'tx-worker') \gset
SELECT outbox_fail(:'id', :tok, 'bad payload', retryable => false) AS status;
COMMIT;
SELECT payload, status, retry_count, last_error FROM outbox_events WHERE id = :'id';
RESET outbox.max_retries;

-------------------------------------------------------------------------------
-- An expired lease met by a transaction claim is reclaimed (the attempt
-- counts); one out of attempts becomes failed instead of being handed out.
-------------------------------------------------------------------------------
TRUNCATE outbox_events, outbox_events_archive;
SELECT outbox_publish('xact.expired', '"e1"') IS NOT NULL AND outbox_publish('xact.expired', '"e2"') IS NOT NULL
       AS published;
SELECT lease_token AS lease_tok FROM outbox_claim(1, interval '1 second', 'gone-worker') \gset
SELECT count(*) AS claimed FROM outbox_claim(1, interval '1 second', 'gone-worker');
SELECT pg_sleep(1.1);
BEGIN;
SELECT payload, attempt, lease_token > :lease_tok AS new_token FROM outbox_claim_xact(1, 'tx-worker');
SELECT payload, status, retry_count, lease_token,
       last_error LIKE 'lease expired: not completed within 1 s by gone-worker%' AS why
  FROM outbox_events ORDER BY seq;
COMMIT;
-- Committed without settling it: e1 is due again. With no retry left, e2's
-- expired lease makes it failed, and it is not handed out.
SET outbox.max_retries = 0;
BEGIN;
SELECT payload, attempt FROM outbox_claim_xact(5, 'tx-worker');
SELECT payload, status, retry_count FROM outbox_events ORDER BY seq;
COMMIT;
RESET outbox.max_retries;

-------------------------------------------------------------------------------
-- Bad arguments.
-------------------------------------------------------------------------------
BEGIN;
SELECT * FROM outbox_claim_xact(0);
ROLLBACK;
BEGIN;
SELECT * FROM outbox_claim_xact(1, repeat('x', 256));
ROLLBACK;
BEGIN;
SELECT * FROM outbox_claim_xact(1, 'w', ARRAY[]::text[]);
ROLLBACK;
BEGIN;
SELECT * FROM outbox_claim_xact(1, 'w', ARRAY['xact.*', NULL]);
ROLLBACK;
-- Type patterns select as outbox_claim's do.
SELECT outbox_publish('other.type', '"o1"') IS NOT NULL AS published;
BEGIN;
SELECT payload, attempt FROM outbox_claim_xact(5, 'w', ARRAY['other.*']);
ROLLBACK;
