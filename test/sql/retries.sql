-- Attempts and retries. With outbox.max_retries = N an event is attempted at
-- most 1 + N times: attempt n that fails is retried while n <= N, and the
-- failure of attempt N + 1 marks it failed. A lease that expires and is
-- reclaimed counts as a failed attempt too.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
ALTER SEQUENCE outbox_lease_token_seq RESTART;

-- Claim the event, report a failure, and make the retry due at once (as
-- superuser: stands for waiting out the backoff). Returns attempt and status.
CREATE FUNCTION pg_temp.attempt_and_fail(retryable boolean DEFAULT true)
RETURNS TABLE (attempt int, status outbox_status) LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    SELECT * INTO c FROM outbox_claim(1, interval '1 minute', 'retry-test');
    IF NOT FOUND THEN
        RETURN;
    END IF;
    attempt := c.attempt;
    status := outbox_fail(c.id, c.lease_token, format('attempt %s failed', c.attempt), retryable => retryable);
    UPDATE outbox_events e SET available_at = now() WHERE e.id = c.id AND e.status = 'created';
    RETURN NEXT;
END
$$;

-- max_retries = 2: attempts 1, 2 and 3, then failed; a fourth claim gets nothing.
SET outbox.max_retries = 2;
SELECT outbox_publish('flaky', '{}') AS id \gset
SELECT * FROM pg_temp.attempt_and_fail();
SELECT * FROM pg_temp.attempt_and_fail();
SELECT * FROM pg_temp.attempt_and_fail();
SELECT * FROM pg_temp.attempt_and_fail();
SELECT status, retry_count, last_error, next_retry_at IS NULL AS no_next_retry, lease_token IS NULL AS no_token
  FROM outbox_events WHERE id = :'id';

-- max_retries = 0: one attempt only.
SET outbox.max_retries = 0;
TRUNCATE outbox_events;
SELECT outbox_publish('once', '{}') IS NOT NULL AS published;
SELECT * FROM pg_temp.attempt_and_fail();
SELECT * FROM pg_temp.attempt_and_fail();

-- retryable => false: failed at once, whatever max_retries says.
SET outbox.max_retries = 10;
TRUNCATE outbox_events;
SELECT outbox_publish('poison', '{}') IS NOT NULL AS published;
SELECT * FROM pg_temp.attempt_and_fail(false);
SELECT status, retry_count, last_error FROM outbox_events;

-- The setting in force when the failure is reported decides.
SET outbox.max_retries = 5;
TRUNCATE outbox_events;
SELECT outbox_publish('changed', '{}') IS NOT NULL AS published;
SELECT * FROM pg_temp.attempt_and_fail();
SELECT * FROM pg_temp.attempt_and_fail();
SET outbox.max_retries = 1;
SELECT * FROM pg_temp.attempt_and_fail();

-------------------------------------------------------------------------------
-- When the retry is due: retry_in if given, else the backoff.
-------------------------------------------------------------------------------
SET outbox.max_retries = 5;
TRUNCATE outbox_events;
SELECT outbox_publish('later', '{}') IS NOT NULL AS published;
SELECT id, lease_token FROM outbox_claim(1) \gset
SELECT clock_timestamp() AS t0 \gset
SELECT outbox_fail(:'id', :lease_token, 'try in 5 minutes', retry_in => interval '5 minutes') AS status;
SELECT status, retry_count, next_retry_at = available_at AS next_is_due,
       available_at >= :'t0'::timestamptz + interval '5 minutes'
       AND available_at <= clock_timestamp() + interval '5 minutes' AS in_5_minutes
  FROM outbox_events WHERE id = :'id';
SELECT count(*) AS claimed FROM outbox_claim(1);
-- retry_in => '0' retries at once.
UPDATE outbox_events SET available_at = now();
SELECT id, lease_token, attempt FROM outbox_claim(1) \gset
SELECT :attempt AS attempt;
SELECT outbox_fail(:'id', :lease_token, 'try again now', retry_in => interval '0') AS status;
SELECT attempt FROM outbox_claim(1);

-- Backoff: full jitter, the n-th retry waits a random time between 0 and
-- min(outbox.max_backoff, outbox.base_backoff * 2^(n-1)). Checked as ranges
-- over many events (the values are random).
SET outbox.base_backoff = '10s';
SET outbox.max_backoff = '35s';
SET outbox.max_retries = 10;
TRUNCATE outbox_events;
SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'backoff', 'payload', i))
                               FROM generate_series(1, 40) i)) IS NOT NULL AS published;
CREATE TEMP TABLE waits (retry int, wait interval);
DO $$
DECLARE
    c record;
    t0 timestamptz;
BEGIN
    FOR n IN 1..4 LOOP
        -- outbox_fail counts from the start of the statement (this DO).
        t0 := statement_timestamp();
        FOR c IN SELECT * FROM outbox_claim(100, interval '1 minute', 'backoff-test') LOOP
            PERFORM outbox_fail(c.id, c.lease_token, 'boom');
        END LOOP;
        INSERT INTO waits SELECT n, e.available_at - t0 FROM outbox_events e;
        UPDATE outbox_events SET available_at = now();  -- the wait is over (superuser)
    END LOOP;
END
$$;
-- Ceilings: 10 s, 20 s, then the 35 s cap (not 40 s). Waits stay within
-- [0, ceiling], and are spread out over it rather than all equal.
SELECT retry, count(*) AS events,
       min(wait) >= interval '0' AS at_least_0,
       max(wait) <= CASE retry WHEN 1 THEN interval '10 s' WHEN 2 THEN interval '20 s' ELSE interval '35 s' END
         AS within_ceiling,
       count(DISTINCT wait) > 30 AS jittered,
       max(wait) > CASE retry WHEN 1 THEN interval '5 s' WHEN 2 THEN interval '10 s' ELSE interval '20 s' END
         AS uses_the_range
  FROM waits GROUP BY retry ORDER BY retry;
RESET outbox.base_backoff;
RESET outbox.max_backoff;

-------------------------------------------------------------------------------
-- A lease that expires counts as a failed attempt: a poison event that kills
-- its consumer every time ends up failed, not claimed forever.
-------------------------------------------------------------------------------
SET outbox.max_retries = 1;
TRUNCATE outbox_events;
SELECT outbox_publish('poison.pill', '{}') AS id \gset
SELECT attempt FROM outbox_claim(1, interval '1 minute', 'victim-1');
-- The consumer dies; its lease runs out (as superuser: the minute passes).
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE id = :'id';
SELECT attempt FROM outbox_claim(1, interval '1 minute', 'victim-2');
SELECT status, retry_count, last_error FROM outbox_events WHERE id = :'id';
-- Dies again: attempt 2 was the last one (1 + max_retries). The next claim
-- marks it failed instead of handing it out.
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE id = :'id';
SELECT count(*) AS claimed FROM outbox_claim(1, interval '1 minute', 'victim-3');
SELECT status, retry_count, last_error FROM outbox_events WHERE id = :'id';
-- It is listed among the failed events.
SELECT type, retry_count FROM outbox_failed_events();

-- Events marked failed do not take places in the batch: a claim of two
-- still hands out the next two due events, under one lease token.
TRUNCATE outbox_events;
SELECT outbox_publish('poison.pill', '{}', id => '00000000-0000-4000-8000-000000000001') IS NOT NULL AS published;
SELECT outbox_publish('poison.pill', '{}', id => '00000000-0000-4000-8000-000000000002') IS NOT NULL AS published;
SELECT outbox_publish('healthy', '{}', id => '00000000-0000-4000-8000-000000000003') IS NOT NULL AS published;
SELECT outbox_publish('healthy', '{}', id => '00000000-0000-4000-8000-000000000004') IS NOT NULL AS published;
SELECT id FROM outbox_claim(2, interval '1 minute', 'victim');
-- Both poison events are past their last attempt when their leases run out.
UPDATE outbox_events SET retry_count = 1, keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE type = 'poison.pill';
SELECT id, type, attempt, lease_token = min(lease_token) OVER () AS one_token
  FROM outbox_claim(2, interval '1 minute', 'survivor');
SELECT id, status, lease_owner, last_error FROM outbox_events ORDER BY seq;

-- A reported failure and an expired lease add up.
TRUNCATE outbox_events;
SELECT outbox_publish('mixed', '{}') AS id \gset
SELECT * FROM pg_temp.attempt_and_fail();
SELECT attempt FROM outbox_claim(1, interval '1 minute', 'dies');
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE id = :'id';
SELECT count(*) AS claimed FROM outbox_claim(1);
SELECT status, retry_count FROM outbox_events WHERE id = :'id';
RESET outbox.max_retries;

-- Long error texts are kept, cut at 8 kB on a character boundary.
TRUNCATE outbox_events;
SELECT outbox_publish('long.error', '{}') AS id \gset
SELECT id, lease_token FROM outbox_claim(1) \gset
SELECT outbox_fail(:'id', :lease_token, repeat('é', 10000)) AS status;
SELECT octet_length(last_error) <= 8192 AS fits, last_error LIKE 'éé%... [truncated]' AS marked
  FROM outbox_events WHERE id = :'id';
