-- Leases write little: taking a lease, extending it, releasing it and taking
-- it back once it ran out are HOT updates (the row's new version on the same
-- page, no new index entries) when the page has room, which the table's
-- fillfactor leaves. No index of outbox_events names status, keep_alive or
-- expire_in_seconds, and a lease leaves available_at alone.
-- pg_stat_xact_user_tables counts the updates of the current transaction.
SET outbox.require_transaction = off;
TRUNCATE outbox_events, outbox_events_archive;
SELECT reloptions @> '{fillfactor=50}' AS pages_keep_room FROM pg_class WHERE oid = 'outbox_events'::regclass;
-- Events of about 300 bytes, as in bench/ (the lease makes each row a few
-- dozen bytes longer: smaller rows leave less room for that at this fill).
SELECT count(outbox_publish('hot.test', jsonb_build_object('n', i, 'note', repeat('x', 250)))) AS published
  FROM generate_series(1, 500) i;
-- The updates of outbox_events since the last call (pg_stat_xact_user_tables
-- counts those of this backend not yet reported).
CREATE TEMP TABLE seen (updated bigint, hot bigint);
INSERT INTO seen SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'outbox_events';
CREATE FUNCTION pg_temp.updates(OUT updated bigint, OUT hot bigint) LANGUAGE sql AS $$
    WITH now_ AS (SELECT n_tup_upd AS u, n_tup_hot_upd AS h FROM pg_stat_xact_user_tables WHERE relname = 'outbox_events'),
         d AS (SELECT n.u - s.updated AS updated, n.h - s.hot AS hot FROM now_ n, seen s),
         upd AS (UPDATE seen SET updated = n.u, hot = n.h FROM now_ n)
    SELECT * FROM d
$$;

-- A claim of 500 events. The rows were inserted to half of each page: the
-- lease makes each about 40 bytes longer (started_on, keep_alive,
-- lease_owner, lease_token were NULL), so the new version of the last row of
-- a page does not fit (a tenth here, fewer with larger rows: 99.2 % HOT in
-- the bench's drain of 100,000 events).
BEGIN;
CREATE TEMP TABLE c AS SELECT * FROM outbox_claim(500, interval '1 minute', 'hot-consumer');
SELECT count(*) AS claimed FROM c;
SELECT * FROM pg_temp.updates();
COMMIT;
SELECT min(lease_token) AS tok FROM c \gset

-- Heartbeat: HOT as well, as far as the page has room (the claim's old row
-- versions are pruned when a page is read and half of it is used).
BEGIN;
SELECT outbox_heartbeat(ARRAY(SELECT id FROM c), :tok, interval '2 minutes') > now() AS extended;
SELECT * FROM pg_temp.updates();
COMMIT;

-- Release half: HOT; the released events are due again at once.
BEGIN;
SELECT outbox_release(ARRAY(SELECT id FROM c WHERE (payload->>'n')::int <= 250), :tok) AS released;
SELECT * FROM pg_temp.updates();
COMMIT;
SELECT count(*) FILTER (WHERE status = 'created' AND available_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'active') AS active
  FROM outbox_events;

-- The other half's lease runs out (as superuser: the two minutes pass). A
-- claim takes them back (counting the attempt) with the released ones: HOT.
UPDATE outbox_events SET keep_alive = now() - make_interval(secs => expire_in_seconds + 1) WHERE status = 'active';
SELECT * FROM pg_temp.updates();  -- (this update of the superuser's: HOT too)
BEGIN;
SELECT count(*) AS claimed, count(*) FILTER (WHERE attempt = 2) AS second_attempts
  FROM outbox_claim(500, interval '1 minute', 'hot-consumer-2');
SELECT * FROM pg_temp.updates();
COMMIT;

-- The index walk does not count leases in force as due: nothing to claim.
SELECT count(*) AS claimed_again FROM outbox_claim(500, interval '1 minute', 'hot-consumer-3');
TRUNCATE outbox_events, outbox_events_archive;
