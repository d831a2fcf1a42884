-- Operations: failed events, retry, discard, replay, statistics, archive
-- partitions.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;

CREATE FUNCTION pg_temp.fingerprint() RETURNS text LANGUAGE sql AS $$
    SELECT md5(coalesce((SELECT string_agg(e::text, '|' ORDER BY e.seq) FROM outbox_events e), '')
               || '#' ||
               coalesce((SELECT string_agg(a::text, '|' ORDER BY a.seq) FROM outbox_events_archive a), ''))
$$;
-- Publish, claim and fail for good (not retryable), one transaction each.
CREATE FUNCTION pg_temp.publish_failed(t text, n int, k text DEFAULT NULL) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    PERFORM outbox_publish(t, jsonb_build_object('n', n), k,
                           id => ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid);
    SELECT * INTO c FROM outbox_claim(1, interval '1 minute', 'ops-test', ARRAY[t]);
    PERFORM outbox_fail(c.id, c.lease_token, 'failure of ' || n, retryable => false);
    RETURN c.id;
END
$$;

-- Five failed events, published one after another (created_on increases).
SELECT pg_temp.publish_failed('ops.failed', 1) AS f1 \gset
SELECT pg_temp.publish_failed('ops.failed', 2) AS f2 \gset
SELECT pg_temp.publish_failed('ops.failed', 3) AS f3 \gset
SELECT pg_temp.publish_failed('ops.failed', 4) AS f4 \gset
SELECT pg_temp.publish_failed('ops.failed', 5, 'key-5') AS f5 \gset
SELECT outbox_publish('ops.pending', '{}', id => '00000000-0000-4000-8000-0000000000aa') AS pending \gset

-------------------------------------------------------------------------------
-- outbox_failed_events: newest first, at most max_events (default 100).
-------------------------------------------------------------------------------
SELECT payload, status, retry_count, last_error FROM outbox_failed_events();
SELECT payload FROM outbox_failed_events(2);
SELECT outbox_failed_events(0);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_failed_events(10001);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_failed_events(NULL);
\echo :LAST_ERROR_SQLSTATE

-------------------------------------------------------------------------------
-- outbox_retry: failed events go back to the queue with a fresh count of
-- attempts. All or nothing: every id must name a failed event.
-------------------------------------------------------------------------------
SELECT pg_temp.fingerprint() AS before \gset
SELECT outbox_retry(ARRAY[:'f1', :'pending']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY[:'f1', '00000000-0000-4000-8000-00000000dead']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry('{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY[:'f1', NULL]::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.fingerprint() = :'before' AS unchanged;
SELECT outbox_retry(ARRAY[:'f1', :'f2', :'f1']::uuid[]) AS retried;
SELECT payload, status, retry_count, next_retry_at, lease_token, available_at <= now() AS due
  FROM outbox_events WHERE id IN (:'f1', :'f2') ORDER BY seq;
-- They are claimed again, as attempt 1.
SELECT payload, attempt FROM outbox_claim(10, types => ARRAY['ops.failed']);

-------------------------------------------------------------------------------
-- outbox_discard: failed events leave the outbox for the archive, with
-- status failed (this unblocks their ordering key).
-------------------------------------------------------------------------------
SELECT outbox_discard(ARRAY[:'pending']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_discard(ARRAY[:'f3', :'f4']::uuid[]) AS discarded;
SELECT payload, status, retry_count, last_error, lease_owner FROM outbox_events_archive ORDER BY seq;
SELECT count(*) AS still_in_outbox FROM outbox_events WHERE id IN (:'f3', :'f4');
-- Discarding twice: they are not in the outbox any more.
SELECT outbox_discard(ARRAY[:'f3']::uuid[]);
\echo :LAST_ERROR_SQLSTATE

-------------------------------------------------------------------------------
-- outbox_replay: an archived event (delivered or discarded) is published
-- again as a new event, with a header naming the original.
-------------------------------------------------------------------------------
SELECT outbox_replay(:'f3') AS replayed \gset
SELECT type, payload, ordering_key, headers, status, retry_count, id <> :'f3' AS new_id
  FROM outbox_events WHERE id = :'replayed';
SELECT outbox_discard(ARRAY[:'f5']::uuid[]) AS discarded;
SELECT outbox_replay(:'f5') AS replayed5 \gset
SELECT type, payload, ordering_key, headers->>'outbox_replay_of' = :'f5' AS names_original
  FROM outbox_events WHERE id = :'replayed5';
-- Only archived events can be replayed.
SELECT outbox_replay(:'pending');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_replay(NULL);
\echo :LAST_ERROR_SQLSTATE
-- Replaying is an operator's action: outbox.require_transaction does not apply.
SET outbox.require_transaction = error;
SELECT outbox_replay(:'f4') IS NOT NULL AS replayed;
SET outbox.require_transaction = off;

-------------------------------------------------------------------------------
-- outbox_stats: counts per status (created = due now, scheduled = due later),
-- the age of the oldest due event, and the archived count.
-------------------------------------------------------------------------------
TRUNCATE outbox_events, outbox_events_archive;
SELECT * FROM outbox_stats();
SELECT outbox_publish_batch($$[
    {"type": "s", "payload": 1}, {"type": "s", "payload": 2}, {"type": "s", "payload": 3},
    {"type": "s", "payload": 4, "delay": "1 hour"}, {"type": "s", "payload": 5}
]$$) IS NOT NULL AS published;
SELECT id, lease_token FROM outbox_claim(1) \gset
SELECT outbox_complete(ARRAY[:'id']::uuid[], :lease_token) AS completed;
SELECT id, lease_token FROM outbox_claim(1) \gset
SELECT outbox_fail(:'id', :lease_token, 'x', retryable => false) AS status;
SELECT count(*) AS claimed FROM outbox_claim(1);
-- The oldest due event waits since an hour ago (set as superuser).
UPDATE outbox_events SET available_at = now() - interval '1 hour' WHERE payload = '5';
SELECT created, scheduled, active, failed, archived,
       oldest_pending_age >= interval '1 hour' AND oldest_pending_age < interval '2 hours' AS oldest_about_1h
  FROM outbox_stats();

-------------------------------------------------------------------------------
-- outbox_archive_maintain: creates the next days' partitions (whole UTC
-- days) and drops the partitions and default-partition rows older than the
-- retention.
-------------------------------------------------------------------------------
SELECT count(*) AS actions,
       bool_and(a ~ '^created outbox_events_archive_p[0-9]{8}$') AS all_created
  FROM outbox_archive_maintain(interval '7 days', 3) a;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'outbox_events_archive'::regclass;
-- Nothing to do the second time.
SELECT count(*) AS actions FROM outbox_archive_maintain(interval '7 days', 3);
-- More days ahead: only the missing ones.
SELECT count(*) AS actions FROM outbox_archive_maintain(interval '7 days', 5);
-- Old data (made as superuser, as if it were 10 days old): a partition of
-- that day and a row in the default partition.
SELECT format('outbox_events_archive_p%s', to_char((now() AT TIME ZONE 'UTC')::date - 10, 'YYYYMMDD')) AS old_part \gset
DO $$
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF outbox_events_archive FOR VALUES FROM (%L) TO (%L)',
                   format('outbox_events_archive_p%s', to_char((now() AT TIME ZONE 'UTC')::date - 10, 'YYYYMMDD')),
                   ((now() AT TIME ZONE 'UTC')::date - 10)::timestamp AT TIME ZONE 'UTC',
                   ((now() AT TIME ZONE 'UTC')::date - 9)::timestamp AT TIME ZONE 'UTC');
END
$$;
INSERT INTO outbox_events_archive (id, seq, type, payload, headers, status, occurred_at, created_on, retry_count, completed_on)
VALUES ('00000000-0000-4000-8000-000000000010', 1, 'old', '{}', '{}', 'completed', now() - interval '10 days',
        now() - interval '10 days', 0, ((now() AT TIME ZONE 'UTC')::date - 10)::timestamp AT TIME ZONE 'UTC' + interval '1 hour'),
       ('00000000-0000-4000-8000-000000000011', 2, 'old', '{}', '{}', 'completed', now() - interval '8 days',
        now() - interval '8 days', 0, now() - interval '8 days'),
       ('00000000-0000-4000-8000-000000000012', 3, 'recent', '{}', '{}', 'completed', now() - interval '2 days',
        now() - interval '2 days', 0, now() - interval '2 days');
SELECT type, tableoid::regclass = :'old_part'::regclass AS in_old_partition FROM outbox_events_archive
 WHERE type IN ('old', 'recent') ORDER BY seq;
SELECT replace(a, :'old_part', 'outbox_events_archive_p<10 days ago>') AS action
  FROM outbox_archive_maintain(interval '7 days', 3) a;
SELECT type FROM outbox_events_archive WHERE type IN ('old', 'recent') ORDER BY seq;
SELECT to_regclass(:'old_part') IS NULL AS old_partition_dropped;
-- Bad arguments.
SELECT outbox_archive_maintain(interval '30 minutes');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_archive_maintain(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_archive_maintain(interval '7 days', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_archive_maintain(interval '7 days', 61);
\echo :LAST_ERROR_SQLSTATE
-- A retention so long that now() - retention is no timestamp is refused
-- naming the argument; the longest outbox.archive_retention is accepted.
SELECT outbox_archive_maintain(interval '10000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_archive_maintain(interval '100000000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_archive_maintain(interval '5000 years 1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS actions FROM outbox_archive_maintain(interval '5000 years', 5);
SELECT count(*) AS actions FROM outbox_archive_maintain(make_interval(mins => 2147483647 / 2), 5);

-------------------------------------------------------------------------------
-- A relation with the name of a coming day's partition that is not that
-- partition is refused, loudly: never taken for the partition (the day's rows
-- would go to the default partition, and retention would never drop them).
-------------------------------------------------------------------------------
-- Its errors, with the day's date in the names and bounds made fixed.
CREATE FUNCTION pg_temp.maintain_error(days int) RETURNS text
LANGUAGE plpgsql SET DateStyle = 'ISO' SET TimeZone = 'UTC' AS $$
DECLARE
    state text; msg text; detail text; hint text;
BEGIN
    PERFORM outbox_archive_maintain(interval '7 days', days);
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN regexp_replace(regexp_replace(
               format(E'%s: %s\nDETAIL: %s\nHINT: %s', state, msg, detail, hint),
               '_p[0-9]{8}', '_pYYYYMMDD', 'g'),
               '[0-9]{4}-[0-9]{2}-[0-9]{2}', 'YYYY-MM-DD', 'g');
END
$$;
SELECT format('outbox_events_archive_p%s', to_char((now() AT TIME ZONE 'UTC')::date + 6, 'YYYYMMDD')) AS day6 \gset
SELECT format('outbox_events_archive_p%s', to_char((now() AT TIME ZONE 'UTC')::date + 7, 'YYYYMMDD')) AS day7 \gset
-- Another role with CREATE on the schema makes a table of that name.
CREATE ROLE ops_squatter;
GRANT CREATE ON SCHEMA public TO ops_squatter;
SET ROLE ops_squatter;
CREATE TABLE :"day6" (id uuid, completed_on timestamptz);
RESET ROLE;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'outbox_events_archive'::regclass;
SELECT pg_temp.maintain_error(6);
\set VERBOSITY sqlstate
SELECT outbox_archive_maintain(interval '7 days', 6);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- It refused before creating anything.
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'outbox_events_archive'::regclass;
DROP TABLE :"day6";
-- A partition of the archive under that name, but with the bounds of
-- another day, is refused too.
DO $$
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF outbox_events_archive FOR VALUES FROM (%L) TO (%L)',
                   format('outbox_events_archive_p%s', to_char((now() AT TIME ZONE 'UTC')::date + 7, 'YYYYMMDD')),
                   ((now() AT TIME ZONE 'UTC')::date + 30)::timestamp AT TIME ZONE 'UTC',
                   ((now() AT TIME ZONE 'UTC')::date + 31)::timestamp AT TIME ZONE 'UTC');
END
$$;
SELECT pg_temp.maintain_error(7);
\set VERBOSITY sqlstate
SELECT outbox_archive_maintain(interval '7 days', 7);
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
DROP TABLE :"day7";
-- Once the names are free, the partitions are made.
SELECT replace(replace(a, :'day6', 'outbox_events_archive_p<day 6>'), :'day7', 'outbox_events_archive_p<day 7>') AS action
  FROM outbox_archive_maintain(interval '7 days', 7) a;
SELECT c.relname = :'day6' AS day6, c.relispartition, pg_get_userbyid(c.relowner) = current_user AS ours
  FROM pg_class c WHERE c.relname IN (:'day6', :'day7') ORDER BY 1 DESC;
REVOKE CREATE ON SCHEMA public FROM ops_squatter;
DROP ROLE ops_squatter;
