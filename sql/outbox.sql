-- outbox: the transactional outbox, inside PostgreSQL.
-- This is the full install script of the current version; the Makefile copies
-- it to sql/outbox--<version>.sql. Upgrade scripts are written by hand.

\echo Use "CREATE EXTENSION outbox" to load this file. \quit

-- Every object is created qualified with @extschema@ and every operator or
-- function an expression uses resolves in pg_catalog, so objects that already
-- exist in the target schema (look-alike operators, functions or tables)
-- either make this script fail (same name) or are never used.

-- The script reads in this order: the guard and the roles, then
--   1. types
--   2. tables, with their indexes, sequences and comments
--   3. functions in C
--   4. functions in SQL and PL/pgSQL
--   5. subscriptions: their table and functions, and the relay's
--   6. privileges: every GRANT and REVOKE, in one place
-- A new function is executable by PUBLIC until section 6 revokes it: list
-- it there. Section 6 keeps the statements in the order they run (an ACL
-- lists its entries in the order they were granted), and the calls of
-- pg_extension_config_dump keep theirs (pg_extension.extconfig does too).

-- Refuse a target schema that an untrusted role could have prepared: its
-- owner must be a superuser, the installing role, or pg_database_owner.
DO $guard$
DECLARE
    owner_name name;
    owner_super boolean;
BEGIN
    SELECT r.rolname, r.rolsuper INTO owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) '@extschema@';
    IF NOT owner_super
       AND owner_name OPERATOR(pg_catalog.<>) CURRENT_USER
       AND owner_name OPERATOR(pg_catalog.<>) 'pg_database_owner' THEN
        RAISE EXCEPTION 'outbox cannot be installed in schema "%" owned by role "%"', '@extschema@', owner_name
            USING ERRCODE = '42501',
                  HINT = 'Install it in a schema owned by a superuser or by the installing role, e.g. CREATE SCHEMA outbox; CREATE EXTENSION outbox SCHEMA outbox;';
    END IF;
END
$guard$;

-------------------------------------------------------------------------------
-- Roles. Roles are cluster-wide: the first CREATE EXTENSION creates them and
-- marks them with a comment; later ones (in other databases) reuse them. A
-- role of the same name that outbox did not create is refused, so nobody can
-- prepare a role and be handed its privileges.
-------------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
    marker constant text := 'role created by the outbox extension';
BEGIN
    FOREACH r IN ARRAY ARRAY['outbox_publisher', 'outbox_consumer', 'outbox_admin'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            IF pg_catalog.shobj_description(
                   (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) r),
                   'pg_authid') IS DISTINCT FROM marker THEN
                RAISE EXCEPTION 'role "%" already exists and was not created by the outbox extension', r
                    USING ERRCODE = '42710',
                          HINT = 'Drop or rename that role, then run CREATE EXTENSION outbox again.';
            END IF;
        ELSE
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
            EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, marker);
        END IF;
    END LOOP;
END
$roles$;

-- ============================================================================
-- 1. Types
-- ============================================================================

-- The lifecycle of an event, named as in outbox-event-bus.
--   created   waiting to be claimed (first delivery, retry, or after a release)
--   active    claimed by a consumer that holds a lease on it
--   completed delivered (rows with this status live in the archive)
--   failed    gave up after the maximum attempts, or failed as not retryable
CREATE TYPE @extschema@.outbox_status AS ENUM ('created', 'active', 'completed', 'failed');

-- ============================================================================
-- 2. Tables
-- ============================================================================

CREATE TABLE @extschema@.outbox_events (
    id                uuid NOT NULL,
    -- Publish order: assigned at insert, increasing. Orders events of one
    -- ordering key and breaks ties between events due at the same time.
    seq               bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    type              text NOT NULL,
    payload           jsonb NOT NULL,
    headers           jsonb NOT NULL DEFAULT '{}'::jsonb,
    ordering_key      text,
    status            @extschema@.outbox_status NOT NULL DEFAULT 'created',
    occurred_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_on        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- When the event may next be claimed: the publish time, the requested
    -- delivery time or the retry time after a failure; 'infinity' while
    -- failed (never due). A lease does not move it: while active, the lease
    -- ends at keep_alive + expire_in_seconds, after which another consumer
    -- may reclaim the event.
    available_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Failed attempts so far (a failure reported by a consumer, or a lease
    -- that expired and was reclaimed). Attempt number = retry_count + 1.
    retry_count       integer NOT NULL DEFAULT 0,
    last_error        text,
    -- When a failed attempt scheduled the next one (NULL otherwise).
    next_retry_at     timestamptz,
    -- The current (or last) lease: when it was taken, the last heartbeat
    -- (or the claim), its length, who holds it and its fencing token. While
    -- active it ends at keep_alive + expire_in_seconds. No index covers
    -- these columns, nor status: taking a lease and extending it are HOT
    -- updates (same page, no new index entries).
    started_on        timestamptz,
    keep_alive        timestamptz,
    expire_in_seconds integer NOT NULL DEFAULT 30,
    lease_owner       text,
    lease_token       bigint,
    -- When the relay handed the event to the subscriptions whose pattern its
    -- type matches (NULL until then): from that moment each of them has a
    -- delivery in outbox_deliveries, which carries the delivery's state, and
    -- the event (status active) leaves outbox_events once all are settled.
    dispatched_at     timestamptz,
    CONSTRAINT outbox_events_pkey PRIMARY KEY (id)
    -- No CHECK constraints, on purpose: PostgreSQL parses a table's CHECK
    -- expressions from their stored text at the start of every statement
    -- that inserts or updates it, and on this hot path that cost 15-25 % of
    -- a publishing transaction (bench/RESULTS.md, W1). Only the extension's
    -- functions write this table (nobody else has INSERT or UPDATE), and they
    -- validate what they write: type and ordering_key non-empty and at most
    -- 255 bytes, headers a JSON object, leases of at least a second,
    -- retry_count never negative, status never 'completed' here.
);

COMMENT ON TABLE @extschema@.outbox_events IS
    'Events published and not yet delivered (created, active) or given up (failed). Write through outbox_publish().';

-- The claim path: due events, oldest first (those handed to subscriptions
-- are not claimed again: their deliveries are). No index names status, and
-- a lease leaves available_at alone: a claim's UPDATE is HOT. Leased events
-- keep their place here, and the claim leaves those whose lease holds out
-- when it reads them; failed events sit at the end ('infinity').
CREATE INDEX outbox_events_claim_idx ON @extschema@.outbox_events (available_at, seq)
    WHERE dispatched_at IS NULL;
-- Per-key ordering: is there an earlier event with the same key?
CREATE INDEX outbox_events_ordering_idx ON @extschema@.outbox_events (ordering_key, seq)
    WHERE ordering_key IS NOT NULL;
-- Operations: failed events, newest first. A failed event, and only a
-- failed one, has available_at 'infinity' (deliver_at must be finite).
CREATE INDEX outbox_events_failed_idx ON @extschema@.outbox_events (created_on)
    WHERE available_at OPERATOR(pg_catalog.=) 'infinity'::timestamptz;

-- A queue table: rows come and go fast. Vacuum it early and without sleeping.
ALTER TABLE @extschema@.outbox_events SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);
-- Pages filled to half at insert: a claim takes whole pages of events in
-- one statement, and each lease is a new row version that must fit on the
-- same page for the update to be HOT (bench/PROFILING.md). A separate
-- statement, as in the update from 0.1.1: the same order of reloptions.
ALTER TABLE @extschema@.outbox_events SET (fillfactor = 50);

-- Events that left the outbox: delivered ('completed') or discarded by an
-- operator after failing ('failed'). Partitioned by day of completed_on so
-- that retention drops whole partitions (see outbox_archive_maintain()); rows
-- for days without a partition go to the default partition.
--
-- The primary key (id, completed_on) is declared on each partition, not on
-- this parent: completed_on is the partition key, so it is just as unique.
-- An index on the parent would break pg_dump / pg_restore of the partitions
-- outbox_archive_maintain() creates: CREATE EXTENSION recreates the parent
-- with its index, the restore's ATTACH PARTITION then builds the partition's
-- index, and the dump's own ADD CONSTRAINT for that index fails.
CREATE TABLE @extschema@.outbox_events_archive (
    id                uuid NOT NULL,
    seq               bigint NOT NULL,
    type              text NOT NULL,
    payload           jsonb NOT NULL,
    headers           jsonb NOT NULL,
    ordering_key      text,
    status            @extschema@.outbox_status NOT NULL,
    occurred_at       timestamptz NOT NULL,
    created_on        timestamptz NOT NULL,
    retry_count       integer NOT NULL,
    last_error        text,
    started_on        timestamptz,
    completed_on      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    lease_owner       text,
    -- For an event delivered through subscriptions: each subscription's
    -- outcome, {"<subscription>": {"status", "attempts", "completed_on",
    -- "last_error", "last_status"}}; NULL for an event a consumer settled.
    deliveries        jsonb
) PARTITION BY RANGE (completed_on);

COMMENT ON TABLE @extschema@.outbox_events_archive IS
    'Events delivered (completed) or discarded after failing (failed), partitioned by day of completed_on.';

CREATE TABLE @extschema@.outbox_events_archive_default
    PARTITION OF @extschema@.outbox_events_archive (
        CONSTRAINT outbox_events_archive_default_pkey PRIMARY KEY (id, completed_on))
    DEFAULT;

-- Both tables (and the default partition) are dumped by pg_dump with their rows.
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_events', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_events_archive', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_events_archive_default', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('@extschema@.outbox_events', 'seq'), '');

-- Fencing tokens: one per claim, increasing.
CREATE SEQUENCE @extschema@.outbox_lease_token_seq AS bigint;
SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_lease_token_seq', '');

-- ============================================================================
-- 3. Functions in C
-- ============================================================================

-------------------------------------------------------------------------------
-- Publishing (C++). SECURITY DEFINER: publishers need no rights on the tables.
-- These functions pin their own search path (pg_catalog only) and name every
-- object of the extension by its schema, so no SET clause is needed.
-------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.outbox_publish(
    type         text,
    payload      jsonb,
    ordering_key text DEFAULT NULL,
    headers      jsonb DEFAULT NULL,
    deliver_at   timestamptz DEFAULT NULL,
    delay        interval DEFAULT NULL,
    id           uuid DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'outbox_publish'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_publish(text, jsonb, text, jsonb, timestamptz, interval, uuid) IS
    'Publish an event in the current transaction; returns its id.';

CREATE FUNCTION @extschema@.outbox_publish_batch(events jsonb)
RETURNS uuid[]
AS 'MODULE_PATHNAME', 'outbox_publish_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_publish_batch(jsonb) IS
    'Publish a JSON array of events ({"type", "payload", "ordering_key", "headers", "deliver_at", "delay", "id"}) in the current transaction; returns their ids in order.';

-------------------------------------------------------------------------------
-- Consuming (C++).
-------------------------------------------------------------------------------

CREATE FUNCTION @extschema@.outbox_claim(
    batch_size integer DEFAULT NULL,
    lease      interval DEFAULT NULL,
    consumer   text DEFAULT NULL,
    types      text[] DEFAULT NULL)
RETURNS TABLE (
    id               uuid,
    type             text,
    payload          jsonb,
    headers          jsonb,
    ordering_key     text,
    occurred_at      timestamptz,
    attempt          integer,
    lease_token      bigint,
    lease_expires_at timestamptz)
AS 'MODULE_PATHNAME', 'outbox_claim'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER ROWS 50
-- With stale statistics (a table filled faster than autoanalyze runs) the
-- claim's estimate can pass jit_above_cost; JIT then costs more than the claim.
SET jit = off;

COMMENT ON FUNCTION @extschema@.outbox_claim(integer, interval, text, text[]) IS
    'Claim up to batch_size due events (FOR UPDATE SKIP LOCKED) with a lease; each row carries the lease''s fencing token. types: event type patterns (''user.created'', ''user.*'', ''*'').';

-- The events are held by the caller's transaction (row locks) instead of a
-- lease: complete, fail or release them before COMMIT. If the transaction
-- ends otherwise they are due again at once, no attempt counted. Cheaper than
-- a lease (nothing is written to claim), and exactly once for a consumer whose
-- effects are writes in this same database.
CREATE FUNCTION @extschema@.outbox_claim_xact(
    batch_size integer DEFAULT NULL,
    consumer   text DEFAULT NULL,
    types      text[] DEFAULT NULL)
RETURNS TABLE (
    id               uuid,
    type             text,
    payload          jsonb,
    headers          jsonb,
    ordering_key     text,
    occurred_at      timestamptz,
    attempt          integer,
    lease_token      bigint,
    lease_expires_at timestamptz)
AS 'MODULE_PATHNAME', 'outbox_claim_xact'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER ROWS 50
SET jit = off;

COMMENT ON FUNCTION @extschema@.outbox_claim_xact(integer, text, text[]) IS
    'Claim up to batch_size due events for the calling transaction (FOR UPDATE SKIP LOCKED, no lease): complete, fail or release them before it commits. lease_token names the claim; lease_expires_at is NULL.';

CREATE FUNCTION @extschema@.outbox_heartbeat(ids uuid[], lease_token bigint, lease interval DEFAULT NULL)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'outbox_heartbeat'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_heartbeat(uuid[], bigint, interval) IS
    'Extend the lease on claimed events; returns the new expiry. Refused (OB001) if the lease was lost.';

CREATE FUNCTION @extschema@.outbox_complete(ids uuid[], lease_token bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'outbox_complete'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_complete(uuid[], bigint) IS
    'Mark claimed events delivered: they move to the archive. All or nothing; refused (OB001) if the lease was lost.';

CREATE FUNCTION @extschema@.outbox_fail(
    id          uuid,
    lease_token bigint,
    error       text,
    retry_in    interval DEFAULT NULL,
    retryable   boolean DEFAULT true)
RETURNS @extschema@.outbox_status
AS 'MODULE_PATHNAME', 'outbox_fail'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_fail(uuid, bigint, text, interval, boolean) IS
    'Report a failed attempt: schedules a retry with exponential backoff and jitter, or marks the event failed after the maximum; returns the new status.';

CREATE FUNCTION @extschema@.outbox_release(ids uuid[], lease_token bigint)
RETURNS integer
AS 'MODULE_PATHNAME', 'outbox_release'
LANGUAGE C VOLATILE PARALLEL UNSAFE SECURITY DEFINER;

COMMENT ON FUNCTION @extschema@.outbox_release(uuid[], bigint) IS
    'Give claimed events back without counting an attempt (for a consumer shutting down).';

-- ============================================================================
-- 4. Functions in SQL and PL/pgSQL: operations, not on any hot path.
-- ============================================================================

CREATE FUNCTION @extschema@.outbox_failed_events(max_events integer DEFAULT 100)
RETURNS SETOF @extschema@.outbox_events
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF max_events IS NULL OR max_events < 1 OR max_events > 10000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 10000, not %', coalesce(max_events::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
        SELECT * FROM @extschema@.outbox_events e
         WHERE e.available_at = 'infinity' AND e.status = 'failed'
         ORDER BY e.created_on DESC, e.seq DESC
         LIMIT max_events;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_failed_events(integer) IS
    'Failed events, newest first (default 100).';

-- Shared by outbox_retry and outbox_discard, before they lock anything: the
-- ids array is refused as the C functions refuse it (distinct_uuid_array in
-- src/state.cpp): same checks, order, messages and SQLSTATEs.
CREATE FUNCTION @extschema@._outbox_check_ids(ids uuid[])
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF ids IS NULL THEN
        RAISE EXCEPTION 'ids must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF array_ndims(ids) > 1 THEN
        RAISE EXCEPTION 'ids must be a one-dimensional array' USING ERRCODE = '2202E';
    END IF;
    IF cardinality(ids) = 0 THEN
        RAISE EXCEPTION 'ids must not be empty' USING ERRCODE = '22023';
    END IF;
    IF cardinality(ids) > 100000 THEN
        RAISE EXCEPTION 'at most 100000 ids can be given at once, not %', cardinality(ids)
            USING ERRCODE = '54000';
    END IF;
    IF array_position(ids, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'ids must not contain NULL' USING ERRCODE = '22004';
    END IF;
END
$$;

-- Shared by outbox_retry and outbox_discard, once the events are locked
-- (ids already checked by _outbox_check_ids): every id must name a failed event.
CREATE FUNCTION @extschema@._outbox_check_failed(ids uuid[], action text)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad uuid;
    bad_status @extschema@.outbox_status;
BEGIN
    SELECT i.id, e.status INTO bad, bad_status
      FROM unnest(ids) AS i(id)
      LEFT JOIN @extschema@.outbox_events e ON e.id = i.id
     WHERE e.status IS DISTINCT FROM 'failed'
     LIMIT 1;
    IF bad IS NULL THEN
        RETURN;
    ELSIF bad_status IS NULL THEN
        RAISE EXCEPTION 'cannot % event %: no such event in outbox_events', action, bad
            USING ERRCODE = 'P0002',
                  HINT = 'outbox_failed_events() lists the failed events; delivered events are in outbox_events_archive.';
    ELSE
        RAISE EXCEPTION 'cannot % event %: it is %, not failed', action, bad, bad_status
            USING ERRCODE = '55000';
    END IF;
END
$$;

CREATE FUNCTION @extschema@.outbox_retry(ids uuid[])
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM @extschema@._outbox_check_ids(ids);
    PERFORM 1 FROM @extschema@.outbox_events e WHERE e.id = ANY (ids) FOR UPDATE;
    PERFORM @extschema@._outbox_check_failed(ids, 'retry');
    UPDATE @extschema@.outbox_events e
       SET status = 'created', retry_count = 0, available_at = now(), next_retry_at = NULL,
           lease_owner = NULL, lease_token = NULL, keep_alive = NULL
     WHERE e.id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    -- The relay hands them to their subscriptions, and looks for the leases
    -- consumers take of them, from the commit on (idle, it looks only when woken).
    PERFORM @extschema@._outbox_wake_relay();
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_retry(uuid[]) IS
    'Put failed events back in the queue with retry_count 0; returns how many.';

CREATE FUNCTION @extschema@.outbox_discard(ids uuid[])
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM @extschema@._outbox_check_ids(ids);
    PERFORM 1 FROM @extschema@.outbox_events e WHERE e.id = ANY (ids) FOR UPDATE;
    PERFORM @extschema@._outbox_check_failed(ids, 'discard');
    WITH gone AS (
        DELETE FROM @extschema@.outbox_events e WHERE e.id = ANY (ids) RETURNING e.*)
    INSERT INTO @extschema@.outbox_events_archive
           (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,
            retry_count, last_error, started_on, completed_on, lease_owner)
    SELECT g.id, g.seq, g.type, g.payload, g.headers, g.ordering_key, 'failed', g.occurred_at,
           g.created_on, g.retry_count, g.last_error, g.started_on, now(), g.lease_owner
      FROM gone g;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_discard(uuid[]) IS
    'Move failed events to the archive with status failed (unblocks their ordering key); returns how many.';

-- An operator's action, not part of a business transaction: the guard of
-- outbox.require_transaction does not apply to it.
CREATE FUNCTION @extschema@.outbox_replay(archived_id uuid)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET outbox.require_transaction = off
AS $$
DECLARE
    a record;
BEGIN
    IF archived_id IS NULL THEN
        RAISE EXCEPTION 'archived_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO a FROM @extschema@.outbox_events_archive x
     WHERE x.id = archived_id ORDER BY x.completed_on DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archived event with id %', archived_id
            USING ERRCODE = 'P0002',
                  HINT = 'Archived events are kept for the retention period only.';
    END IF;
    RETURN @extschema@.outbox_publish(
        a.type, a.payload, a.ordering_key,
        a.headers || jsonb_build_object('outbox_replay_of', a.id::text));
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_replay(uuid) IS
    'Publish an archived event again, as a new event (header outbox_replay_of names the original); returns the new id.';

CREATE FUNCTION @extschema@.outbox_stats(
    OUT created bigint,
    OUT scheduled bigint,
    OUT active bigint,
    OUT failed bigint,
    OUT oldest_pending_age interval,
    OUT archived bigint)
RETURNS record
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE e.status = 'created' AND e.available_at <= now()),
           count(*) FILTER (WHERE e.status = 'created' AND e.available_at > now()),
           count(*) FILTER (WHERE e.status = 'active'),
           count(*) FILTER (WHERE e.status = 'failed'),
           -- Due and not held: created, handed over, or a lease that ended.
           now() - min(e.available_at) FILTER (WHERE e.available_at <= now()
               AND (e.status = 'created' OR e.status = 'active'
                    AND (e.dispatched_at IS NOT NULL
                         OR e.keep_alive + make_interval(secs => e.expire_in_seconds) <= now()))),
           (SELECT count(*) FROM @extschema@.outbox_events_archive)
      FROM @extschema@.outbox_events e
$$;

COMMENT ON FUNCTION @extschema@.outbox_stats() IS
    'Counts per status (created = due now, scheduled = due later), age of the oldest due event, archived count.';

-- Create the archive partitions for the next days and drop those older than
-- the retention period; rows of the default partition older than that are
-- deleted. Returns what it did, one line per action.
CREATE FUNCTION @extschema@.outbox_archive_maintain(
    retention interval DEFAULT '7 days',
    days_ahead integer DEFAULT 3)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    day date;
    part text;
    lower_bound timestamptz;
    cutoff timestamptz;
    p record;
    existing record;
    upper_bound timestamptz;
    n bigint;
BEGIN
    -- At most 5000 years, so that now() - retention is a timestamp (they start
    -- in 4713 BC); the longest outbox.archive_retention is about 2040 years.
    IF retention IS NULL OR retention < interval '1 hour' OR retention > interval '5000 years' THEN
        RAISE EXCEPTION 'retention must be between 1 hour and 5000 years'
            USING ERRCODE = '22023',
                  DETAIL = format('The value given is %s.', coalesce(retention::text, 'NULL'));
    END IF;
    IF days_ahead IS NULL OR days_ahead < 1 OR days_ahead > 60 THEN
        RAISE EXCEPTION 'days_ahead must be between 1 and 60' USING ERRCODE = '22023';
    END IF;
    -- Partitions are whole UTC days; today's is not created here if the
    -- default partition already holds rows of today (they stay there).
    -- A relation that already has a day's partition name must be that
    -- partition: a partition of outbox_events_archive with that day's bounds.
    -- Anything else (a table another role with CREATE on the schema made) is
    -- refused: that day's rows would go to the default partition unnoticed.
    FOR i IN 1..days_ahead LOOP
        day := (now() AT TIME ZONE 'UTC')::date + i;
        part := 'outbox_events_archive_p' || to_char(day, 'YYYYMMDD');
        lower_bound := day::timestamp AT TIME ZONE 'UTC';
        upper_bound := (day + 1)::timestamp AT TIME ZONE 'UTC';
        SELECT c.relkind, c.relispartition,
               pg_get_userbyid(c.relowner) AS owner,
               pg_get_expr(c.relpartbound, c.oid) AS bound,
               EXISTS (SELECT FROM pg_inherits i
                        WHERE i.inhrelid = c.oid
                          AND i.inhparent = '@extschema@.outbox_events_archive'::regclass) AS ours
          INTO existing
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = '@extschema@' AND c.relname = part;
        IF NOT FOUND THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.outbox_events_archive (PRIMARY KEY (id, completed_on)) '
                           'FOR VALUES FROM (%L) TO (%L)',
                           '@extschema@', part, '@extschema@', lower_bound, upper_bound);
            RETURN NEXT 'created ' || part;
        ELSIF NOT (existing.relispartition AND existing.ours) THEN
            RAISE EXCEPTION 'relation "%.%" already exists and is not a partition of "%.outbox_events_archive"',
                            '@extschema@', part, '@extschema@'
                USING ERRCODE = '42P07',
                      DETAIL = format('It is a %s owned by role %I; outbox_archive_maintain() creates the archive partition of %s under this name.',
                                      CASE existing.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table'
                                           WHEN 'v' THEN 'view' ELSE 'relation' END,
                                      existing.owner, day),
                      HINT = 'Drop or rename that relation (and consider who may CREATE in the extension''s schema), then run outbox_archive_maintain() again.';
        ELSIF existing.bound IS DISTINCT FROM format('FOR VALUES FROM (%L) TO (%L)', lower_bound, upper_bound) THEN
            RAISE EXCEPTION 'archive partition "%.%" does not cover the day %', '@extschema@', part, day
                USING ERRCODE = '42P07',
                      DETAIL = format('Its bounds are %s; expected %s.', existing.bound,
                                      format('FOR VALUES FROM (%L) TO (%L)', lower_bound, upper_bound)),
                      HINT = 'Detach and rename that partition, then run outbox_archive_maintain() again.';
        END IF;
    END LOOP;
    cutoff := now() - retention;
    FOR p IN
        SELECT c.oid::regclass AS rel, c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = '@extschema@.outbox_events_archive'::regclass
           AND c.relname <> 'outbox_events_archive_default'
    LOOP
        upper_bound := substring(p.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        IF upper_bound IS NOT NULL AND upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', p.rel);
            RETURN NEXT 'dropped ' || p.relname;
        END IF;
    END LOOP;
    DELETE FROM @extschema@.outbox_events_archive_default d WHERE d.completed_on < cutoff;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        RETURN NEXT 'deleted ' || n || ' rows from outbox_events_archive_default';
    END IF;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_archive_maintain(interval, integer) IS
    'Create the next days'' archive partitions and drop those past retention.';

-- ============================================================================
-- 5. Subscriptions: SQL handlers the relay (background worker) calls, once per
--    event, each in the transaction that settles its delivery. Their table,
--    the deliveries' table, then their functions (C, then SQL), with the
--    relay's statistics and the operator's functions for deliveries.
-- ============================================================================

CREATE TABLE @extschema@.outbox_subscriptions (
    name        text NOT NULL,
    -- An event type ('user.created') or a pattern ('user.*', '*').
    event_type  text NOT NULL,
    -- A function taking one outbox_events row; it runs as owner (NULL for an
    -- external sink).
    handler     regprocedure,
    owner       regrole NOT NULL,
    -- A paused subscription receives nothing, and the events it matches wait
    -- in outbox_events (even those other subscriptions match) until it resumes.
    paused      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Where its deliveries go: 'sql' (the handler, in the relay's batch
    -- transaction), 'http' or 'kafka' (the endpoint, by the sink worker).
    sink        text NOT NULL DEFAULT 'sql',
    endpoint    text,
    CONSTRAINT outbox_subscriptions_pkey PRIMARY KEY (name),
    CONSTRAINT outbox_subscriptions_sink_check
        CHECK (sink OPERATOR(pg_catalog.=) 'sql' AND handler IS NOT NULL AND endpoint IS NULL
               OR sink OPERATOR(pg_catalog.=) ANY ('{http,kafka}'::text[]) AND handler IS NULL AND endpoint IS NOT NULL),
    CONSTRAINT outbox_subscriptions_name_check
        CHECK (name OPERATOR(pg_catalog.<>) ''::text
               AND pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 255),
    CONSTRAINT outbox_subscriptions_event_type_check
        CHECK (event_type OPERATOR(pg_catalog.<>) ''::text
               AND pg_catalog.octet_length(event_type) OPERATOR(pg_catalog.<=) 255)
);

COMMENT ON TABLE @extschema@.outbox_subscriptions IS
    'SQL handlers the relay calls for each event of a type (pattern). Change through outbox_subscribe() and friends.';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_subscriptions', '');

-- Deliveries: one row per (event, subscription) the relay handed the event
-- to, with that delivery's own state: its attempts, backoff, last error,
-- failed state. A failure at one subscription never re-runs or holds back
-- another. The relay creates them when it dispatches an event (for every
-- subscription whose pattern the type matches, paused ones too) and runs the
-- SQL handlers' deliveries in its batch's transaction; a delivery settled
-- (completed, or failed and discarded by an operator) gets completed_on, and
-- once all of an event's deliveries are settled the event moves to the
-- archive, which keeps each outcome (outbox_events_archive.deliveries).
CREATE TABLE @extschema@.outbox_deliveries (
    event_id      uuid NOT NULL,
    subscription  text NOT NULL,
    -- The event's publish order and ordering key: deliveries of one key to
    -- one subscription run in this order, one after the other.
    seq           bigint NOT NULL,
    ordering_key  text,
    --   created   due at available_at (first attempt, or a retry)
    --   active    being delivered under a lease (external sinks)
    --   completed delivered
    --   failed    gave up after the maximum attempts
    status        @extschema@.outbox_status NOT NULL DEFAULT 'created',
    available_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Attempts made: a SQL handler's is counted when it ends (a success, or
    -- a failure), an external delivery's when it is claimed.
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    -- The status code of the last answer of an HTTP endpoint.
    last_status   integer,
    next_retry_at timestamptz,
    started_on    timestamptz,
    lease_token   bigint,
    -- Set when the delivery is settled: completed, or failed and discarded.
    completed_on  timestamptz,
    CONSTRAINT outbox_deliveries_pkey PRIMARY KEY (event_id, subscription)
);

COMMENT ON TABLE @extschema@.outbox_deliveries IS
    'The state of each (event, subscription) delivery until the event moves to the archive. Written by the relay.';

-- The claim path, per subscription: due deliveries, oldest first.
CREATE INDEX outbox_deliveries_claim_idx ON @extschema@.outbox_deliveries (subscription, available_at, seq)
    WHERE status OPERATOR(pg_catalog.=) 'created'::@extschema@.outbox_status;
-- Per-key ordering within a subscription: an earlier delivery not settled?
CREATE INDEX outbox_deliveries_ordering_idx ON @extschema@.outbox_deliveries (subscription, ordering_key, seq)
    WHERE ordering_key IS NOT NULL AND completed_on IS NULL;
-- Operations: failed deliveries.
CREATE INDEX outbox_deliveries_failed_idx ON @extschema@.outbox_deliveries (subscription, available_at)
    WHERE status OPERATOR(pg_catalog.=) 'failed'::@extschema@.outbox_status AND completed_on IS NULL;

ALTER TABLE @extschema@.outbox_deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_deliveries', '');

CREATE FUNCTION @extschema@.outbox_subscribe(
    name       text,
    event_type text,
    handler    regproc,
    owner      regrole DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'outbox_subscribe'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.outbox_subscribe(text, text, regproc, regrole) IS
    'Call handler (a function taking one outbox_events row; name it ''my_handler'' or, if overloaded, ''my_handler(outbox_events)''::regprocedure) for every event whose type matches event_type (''user.created'', ''user.*'', ''*''); it runs as owner (default: the calling role), exactly once per event.';

CREATE FUNCTION @extschema@._outbox_wake_relay()
RETURNS void
AS 'MODULE_PATHNAME', '_outbox_wake_relay'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- What each relay worker is doing, with its counters since it started
-- (needs shared_preload_libraries = 'outbox').
CREATE FUNCTION @extschema@.outbox_worker_stats()
RETURNS TABLE (
    database      text,
    pid           integer,
    state         text,
    started_at    timestamptz,
    delivered     bigint,
    failed        bigint,
    retried       bigint,
    reclaimed     bigint,
    batches       bigint,
    last_batch_at timestamptz,
    last_error    text,
    last_error_at timestamptz,
    sink_queue    bigint)
AS 'MODULE_PATHNAME', 'outbox_worker_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.outbox_worker_stats() IS
    'One row per database the relay serves: its worker''s pid, what it is doing, and its counters (delivered, failed, retried, reclaimed, batches) since the server started; sink_queue: the records its sink worker''s Kafka producers hold (queued to send or awaiting their delivery report), NULL without a Kafka producer.';

CREATE FUNCTION @extschema@._outbox_subscription_set_paused(sub text, pause boolean)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sub IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    UPDATE @extschema@.outbox_subscriptions s SET paused = pause WHERE s.name = sub;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', sub
            USING ERRCODE = '42704',
                  HINT = 'SELECT name FROM outbox_subscriptions lists them.';
    END IF;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

CREATE FUNCTION @extschema@.outbox_pause_subscription(name text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._outbox_subscription_set_paused(name, true) $$;

COMMENT ON FUNCTION @extschema@.outbox_pause_subscription(text) IS
    'Stop calling the subscription''s handler; the events it matches wait in outbox_events until it resumes.';

CREATE FUNCTION @extschema@.outbox_resume_subscription(name text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._outbox_subscription_set_paused(name, false) $$;

COMMENT ON FUNCTION @extschema@.outbox_resume_subscription(text) IS
    'Deliver to a paused subscription again, starting with the events that waited.';

CREATE FUNCTION @extschema@.outbox_unsubscribe(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids uuid[];
BEGIN
    IF outbox_unsubscribe.name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    DELETE FROM @extschema@.outbox_subscriptions s WHERE s.name = outbox_unsubscribe.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" does not exist', outbox_unsubscribe.name
            USING ERRCODE = '42704',
                  HINT = 'SELECT name FROM outbox_subscriptions lists them.';
    END IF;
    -- Its deliveries not settled go with it. An event it alone still had is
    -- handed back to the queue when no other subscription had it (for SQL
    -- consumers, or a new subscription), else archived with the others'
    -- outcomes once they are settled.
    WITH gone AS (
        DELETE FROM @extschema@.outbox_deliveries d
         WHERE d.subscription = outbox_unsubscribe.name AND d.completed_on IS NULL
        RETURNING d.event_id)
    SELECT array_agg(g.event_id) INTO ids FROM gone g;
    IF ids IS NOT NULL THEN
        UPDATE @extschema@.outbox_events e
           SET status = 'created', dispatched_at = NULL, available_at = now()
         WHERE e.id = ANY (ids)
           AND NOT EXISTS (SELECT FROM @extschema@.outbox_deliveries d WHERE d.event_id = e.id);
        PERFORM @extschema@._outbox_archive_settled(ids);
    END IF;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_unsubscribe(text) IS
    'Drop a subscription and its deliveries not yet made. Events it alone matched stay in outbox_events, for SQL consumers or a new subscription.';

-------------------------------------------------------------------------------
-- Deliveries: settling events, and the operator's functions.
-------------------------------------------------------------------------------

-- Move the events `ids` whose deliveries are all settled to the archive,
-- with each subscription's outcome; returns how many moved. Whoever settles
-- deliveries calls it (the relay, an operator's discard): the event rows are
-- locked first, in id order, so that of two transactions settling the last
-- two deliveries of one event the second sees the first's (a statement after
-- the lock takes a new snapshot: the workers run in READ COMMITTED).
CREATE FUNCTION @extschema@._outbox_archive_settled(ids uuid[])
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Planned for the ids given: a generic plan does not know how few they are,
-- and can scan whole tables that grow and shrink fast.
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM 1 FROM @extschema@.outbox_events e WHERE e.id = ANY (ids) ORDER BY e.id FOR UPDATE;
    -- Each table is reached through its primary key: outbox_deliveries
    -- fills and empties faster than it is analyzed, and on its default
    -- statistics a join with it on event_id looks like a quarter of the
    -- table (a scan of all of it). Settled: every delivery completed or
    -- given up, or none left at all; OFFSET 0 keeps the NOT EXISTS a lookup
    -- per event in the primary key (not an anti-join the estimates choose:
    -- a nested loop over a list of all the deliveries was n * n, 50 ms of
    -- the 70 ms it took to archive 1,000 events).
    WITH settled AS (
        SELECT e.id FROM @extschema@.outbox_events e
         WHERE e.id = ANY (ids) AND e.dispatched_at IS NOT NULL
           AND NOT EXISTS (SELECT FROM @extschema@.outbox_deliveries d
                            WHERE d.event_id = e.id AND d.completed_on IS NULL OFFSET 0)),
    outcomes AS (
        DELETE FROM @extschema@.outbox_deliveries d
         WHERE d.event_id = ANY (ARRAY(SELECT s.id FROM settled s)) RETURNING d.*),
    gone AS (
        DELETE FROM @extschema@.outbox_events e
         WHERE e.id = ANY (ARRAY(SELECT s.id FROM settled s)) RETURNING e.*),
    per_event AS (
        SELECT o.event_id AS id,
               bool_and(o.status = 'completed') AS ok,
               -- The failed attempts of the delivery that needed the most.
               max(o.attempts - CASE WHEN o.status = 'completed' THEN 1 ELSE 0 END) AS failures,
               (array_agg(o.last_error ORDER BY o.completed_on DESC)
                    FILTER (WHERE o.last_error IS NOT NULL))[1] AS last_error,
               jsonb_object_agg(o.subscription, jsonb_strip_nulls(jsonb_build_object(
                   'status', o.status, 'attempts', o.attempts, 'completed_on', o.completed_on,
                   'last_error', o.last_error, 'last_status', o.last_status))) AS deliveries
          FROM outcomes o
         GROUP BY o.event_id)
    INSERT INTO @extschema@.outbox_events_archive
           (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,
            retry_count, last_error, started_on, completed_on, lease_owner, deliveries)
    SELECT g.id, g.seq, g.type, g.payload, g.headers, g.ordering_key,
           CASE WHEN coalesce(p.ok, true) THEN 'completed' ELSE 'failed' END::@extschema@.outbox_status,
           g.occurred_at, g.created_on, g.retry_count + coalesce(p.failures, 0), coalesce(p.last_error, g.last_error),
           g.dispatched_at, statement_timestamp(), 'outbox relay', coalesce(p.deliveries, '{}'::jsonb)
      FROM gone g LEFT JOIN per_event p ON p.id = g.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- The subscription named must exist (42704 otherwise).
CREATE FUNCTION @extschema@._outbox_check_subscription(sub text)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sub IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT FROM @extschema@.outbox_subscriptions s WHERE s.name = sub) THEN
        RAISE EXCEPTION 'subscription "%" does not exist', sub
            USING ERRCODE = '42704',
                  HINT = 'SELECT name FROM outbox_subscriptions lists them.';
    END IF;
END
$$;

-- Once the deliveries are locked: every id must name a delivery of the
-- subscription not settled yet, failed (or, to discard it, pending: an
-- operator may give up deliveries that wait, of a disabled endpoint say).
CREATE FUNCTION @extschema@._outbox_check_failed_deliveries(sub text, ids uuid[], action text)
RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad uuid;
    bad_status @extschema@.outbox_status;
    bad_settled boolean;
BEGIN
    SELECT i.id, d.status, d.completed_on IS NOT NULL INTO bad, bad_status, bad_settled
      FROM unnest(ids) AS i(id)
      LEFT JOIN @extschema@.outbox_deliveries d ON d.event_id = i.id AND d.subscription = sub
     WHERE d.completed_on IS NOT NULL
        OR (d.status IS DISTINCT FROM 'failed' AND NOT (action = 'discard' AND d.status = 'created'))
     LIMIT 1;
    IF bad IS NULL THEN
        RETURN;
    ELSIF bad_status IS NULL THEN
        RAISE EXCEPTION 'cannot % the delivery of event % to subscription "%": there is no such delivery', action, bad, sub
            USING ERRCODE = 'P0002',
                  HINT = 'outbox_failed_deliveries() lists the failed deliveries; settled ones are in outbox_events_archive.deliveries.';
    ELSIF bad_settled THEN
        RAISE EXCEPTION 'cannot % the delivery of event % to subscription "%": it is settled already (%)', action, bad, sub,
                        CASE bad_status WHEN 'failed' THEN 'discarded' ELSE bad_status::text END
            USING ERRCODE = '55000';
    ELSIF action = 'discard' THEN
        RAISE EXCEPTION 'cannot discard the delivery of event % to subscription "%": it is being delivered (%)', bad, sub, bad_status
            USING ERRCODE = '55000',
                  HINT = 'Pause the subscription (or the endpoint), wait for the attempt to end, then discard it.';
    ELSE
        RAISE EXCEPTION 'cannot % the delivery of event % to subscription "%": it is %, not failed', action, bad, sub, bad_status
            USING ERRCODE = '55000';
    END IF;
END
$$;

CREATE FUNCTION @extschema@.outbox_failed_deliveries(
    subscription_name text DEFAULT NULL,
    max_deliveries    integer DEFAULT 100)
RETURNS TABLE (
    event_id     uuid,
    subscription text,
    type         text,
    ordering_key text,
    attempts     integer,
    last_error   text,
    last_status  integer,
    failed_at    timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF max_deliveries IS NULL OR max_deliveries < 1 OR max_deliveries > 10000 THEN
        RAISE EXCEPTION 'max_deliveries must be between 1 and 10000, not %', coalesce(max_deliveries::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    IF subscription_name IS NOT NULL THEN
        PERFORM @extschema@._outbox_check_subscription(subscription_name);
    END IF;
    RETURN QUERY
        SELECT d.event_id, d.subscription, e.type, d.ordering_key, d.attempts, d.last_error, d.last_status,
               d.available_at
          FROM @extschema@.outbox_deliveries d
          JOIN @extschema@.outbox_events e ON e.id = d.event_id
         WHERE d.status = 'failed' AND d.completed_on IS NULL
           AND (subscription_name IS NULL OR d.subscription = subscription_name)
         ORDER BY d.available_at DESC, d.seq DESC
         LIMIT max_deliveries;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_failed_deliveries(text, integer) IS
    'Deliveries that gave up after the maximum attempts, newest first (of one subscription, or all; default 100). Their events wait in outbox_events.';

CREATE FUNCTION @extschema@.outbox_retry_deliveries(subscription text, ids uuid[])
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM @extschema@._outbox_check_subscription(outbox_retry_deliveries.subscription);
    PERFORM @extschema@._outbox_check_ids(ids);
    PERFORM 1 FROM @extschema@.outbox_deliveries d
     WHERE d.subscription = outbox_retry_deliveries.subscription AND d.event_id = ANY (ids)
     ORDER BY d.event_id FOR UPDATE;
    PERFORM @extschema@._outbox_check_failed_deliveries(outbox_retry_deliveries.subscription, ids, 'retry');
    UPDATE @extschema@.outbox_deliveries d
       SET status = 'created', attempts = 0, available_at = now(), next_retry_at = NULL, lease_token = NULL
     WHERE d.subscription = outbox_retry_deliveries.subscription AND d.event_id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM @extschema@._outbox_wake_relay();
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_retry_deliveries(text, uuid[]) IS
    'Deliver failed deliveries of a subscription again, attempts from 0; returns how many.';

CREATE FUNCTION @extschema@.outbox_discard_deliveries(subscription text, ids uuid[])
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM @extschema@._outbox_check_subscription(outbox_discard_deliveries.subscription);
    PERFORM @extschema@._outbox_check_ids(ids);
    PERFORM 1 FROM @extschema@.outbox_deliveries d
     WHERE d.subscription = outbox_discard_deliveries.subscription AND d.event_id = ANY (ids)
     ORDER BY d.event_id FOR UPDATE;
    PERFORM @extschema@._outbox_check_failed_deliveries(outbox_discard_deliveries.subscription, ids, 'discard');
    UPDATE @extschema@.outbox_deliveries d
       SET completed_on = now(), status = 'failed',
           last_error = coalesce(d.last_error, 'given up by an operator (outbox_discard_deliveries)')
     WHERE d.subscription = outbox_discard_deliveries.subscription AND d.event_id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM @extschema@._outbox_archive_settled(ids);
    -- Later deliveries of the same ordering keys may go now.
    PERFORM @extschema@._outbox_wake_relay();
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_discard_deliveries(text, uuid[]) IS
    'Give up failed or pending deliveries of a subscription (unblocks their ordering keys there); an event whose deliveries are all settled moves to the archive (status failed); returns how many.';

-- An operator's action: the guard of outbox.require_transaction does not apply.
CREATE FUNCTION @extschema@.outbox_replay(archived_id uuid, subscription text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET outbox.require_transaction = off
AS $$
DECLARE
    a record;
    new_id uuid := gen_random_uuid();
    new_seq bigint;
BEGIN
    IF archived_id IS NULL THEN
        RAISE EXCEPTION 'archived_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM @extschema@._outbox_check_subscription(outbox_replay.subscription);
    SELECT * INTO a FROM @extschema@.outbox_events_archive x
     WHERE x.id = archived_id ORDER BY x.completed_on DESC LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archived event with id %', archived_id
            USING ERRCODE = 'P0002',
                  HINT = 'Archived events are kept for the retention period only.';
    END IF;
    -- A new event, handed to this subscription alone.
    INSERT INTO @extschema@.outbox_events (id, type, payload, headers, ordering_key, status, dispatched_at)
    VALUES (new_id, a.type, a.payload, a.headers || jsonb_build_object('outbox_replay_of', a.id::text),
            a.ordering_key, 'active', now())
    RETURNING seq INTO new_seq;
    INSERT INTO @extschema@.outbox_deliveries (event_id, subscription, seq, ordering_key)
    VALUES (new_id, outbox_replay.subscription, new_seq, a.ordering_key);
    PERFORM @extschema@._outbox_wake_relay();
    RETURN new_id;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_replay(uuid, text) IS
    'Deliver an archived event again to one subscription only, as a new event (header outbox_replay_of names the original); returns the new id.';

CREATE FUNCTION @extschema@.outbox_delivery_stats()
RETURNS TABLE (
    subscription       text,
    paused             boolean,
    pending            bigint,
    scheduled          bigint,
    active             bigint,
    failed             bigint,
    oldest_pending_age interval)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.name, s.paused,
           count(*) FILTER (WHERE d.status = 'created' AND d.available_at <= now()),
           count(*) FILTER (WHERE d.status = 'created' AND d.available_at > now()),
           count(*) FILTER (WHERE d.status = 'active'),
           count(*) FILTER (WHERE d.status = 'failed' AND d.completed_on IS NULL),
           now() - min(d.available_at) FILTER (WHERE d.status IN ('created', 'active')
                                                   AND d.available_at <= now())
      FROM @extschema@.outbox_subscriptions s
      LEFT JOIN @extschema@.outbox_deliveries d ON d.subscription = s.name AND d.completed_on IS NULL
     GROUP BY s.name, s.paused
     ORDER BY s.name
$$;

COMMENT ON FUNCTION @extschema@.outbox_delivery_stats() IS
    'Per subscription: deliveries due now (pending), due later (scheduled), in flight (active), failed, and the age of the oldest due one.';

-------------------------------------------------------------------------------
-- External sinks: HTTP endpoints (webhooks). A subscription whose sink is
-- 'http' names an endpoint; the sink worker (a background worker per
-- database, next to the relay) delivers its deliveries with a lease, with no
-- transaction open while it waits on the network.
-------------------------------------------------------------------------------

CREATE TABLE @extschema@.outbox_endpoints (
    name                 text NOT NULL,
    -- 'http': a webhook URL (url, headers); 'kafka': a Kafka cluster
    -- (bootstrap_servers, topic, properties).
    kind                 text NOT NULL DEFAULT 'http',
    url                  text,
    bootstrap_servers    text,
    -- The topic template: a topic name in which ${type} stands for the
    -- event's type and ${aggregate} for its first segment.
    topic                text,
    -- Producer properties (an allow-list; never credentials, which come from
    -- the file outbox.kafka_credentials_file names): a JSON object of strings.
    properties           jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Static headers sent with every delivery: a JSON object of strings.
    headers              jsonb NOT NULL DEFAULT '{}'::jsonb,
    timeout_ms           integer NOT NULL,
    max_in_flight        integer NOT NULL,
    --   enabled   delivering
    --   paused    by an operator; deliveries wait
    --   disabled  by the sink (a 410 answer, or failing for outbox.webhook_disable_after);
    --             deliveries wait until outbox_resume_endpoint()
    state                text NOT NULL DEFAULT 'enabled',
    disabled_reason      text,
    disabled_at          timestamptz,
    -- The circuit breaker: failures in a row, since when, and until when no
    -- attempt is made (then one probe).
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    breaker_open_until   timestamptz,
    last_success_at      timestamptz,
    last_error           text,
    last_error_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT outbox_endpoints_pkey PRIMARY KEY (name),
    CONSTRAINT outbox_endpoints_name_check
        CHECK (name OPERATOR(pg_catalog.<>) ''::text AND pg_catalog.octet_length(name) OPERATOR(pg_catalog.<=) 255),
    CONSTRAINT outbox_endpoints_state_check
        CHECK (state OPERATOR(pg_catalog.=) ANY ('{enabled,paused,disabled}'::text[])),
    CONSTRAINT outbox_endpoints_kind_check
        CHECK (kind OPERATOR(pg_catalog.=) 'http' AND url IS NOT NULL AND bootstrap_servers IS NULL AND topic IS NULL
               OR kind OPERATOR(pg_catalog.=) 'kafka' AND url IS NULL AND bootstrap_servers IS NOT NULL
                  AND topic IS NOT NULL)
);

COMMENT ON TABLE @extschema@.outbox_endpoints IS
    'HTTP endpoints and Kafka targets that subscriptions deliver to. Change through outbox_create_endpoint(), outbox_create_kafka_target() and friends.';

SELECT pg_catalog.pg_extension_config_dump('@extschema@.outbox_endpoints', '');

-- Signing secrets, generated by the server. Deliberately not dumped by
-- pg_dump (not a configuration table): a dump never carries a secret; after
-- a restore, outbox_rotate_endpoint_secret() makes a new one (until then the
-- endpoint's deliveries wait). Readable by the extension's owner only.
CREATE TABLE @extschema@.outbox_endpoint_secrets (
    endpoint   text NOT NULL,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- NULL: the current secret; else a previous one, still signing until then.
    expires_at timestamptz,
    CONSTRAINT outbox_endpoint_secrets_pkey PRIMARY KEY (endpoint, created_at)
);

COMMENT ON TABLE @extschema@.outbox_endpoint_secrets IS
    'Signing secrets of the endpoints (not dumped by pg_dump). Written by outbox_create_endpoint() and outbox_rotate_endpoint_secret() only.';

CREATE FUNCTION @extschema@._outbox_check_webhook_url(url text)
RETURNS void
AS 'MODULE_PATHNAME', '_outbox_check_webhook_url'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION @extschema@._outbox_new_webhook_secret()
RETURNS text
AS 'MODULE_PATHNAME', '_outbox_new_webhook_secret'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@._outbox_redact_url(url text)
RETURNS text
AS 'MODULE_PATHNAME', '_outbox_redact_url'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Checks shared by outbox_create_endpoint and outbox_alter_endpoint: each
-- given value valid, or an error naming it (nothing is stored).
CREATE FUNCTION @extschema@._outbox_check_endpoint_values(
    headers jsonb, timeout interval, max_in_flight integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF headers IS NOT NULL THEN
        IF jsonb_typeof(headers) <> 'object' THEN
            RAISE EXCEPTION 'headers must be a JSON object of strings, not %', jsonb_typeof(headers)
                USING ERRCODE = '22023';
        END IF;
        SELECT k INTO bad FROM jsonb_each(headers) AS h(k, v)
         WHERE jsonb_typeof(v) <> 'string' OR k !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,128}$'
            OR v #>> '{}' ~ '[\r\n\x01-\x08\x0b\x0c\x0e-\x1f]' OR octet_length(v #>> '{}') > 4096
            OR lower(k) IN ('content-type', 'content-length', 'host', 'webhook-id', 'webhook-timestamp',
                            'webhook-signature', 'transfer-encoding', 'connection')
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'header "%" cannot be set', bad
                USING ERRCODE = '22023',
                      HINT = 'Header names are HTTP tokens; values are strings of at most 4096 bytes without control characters; the webhook headers, Content-Type, Host and the framing headers are set by the sink.';
        END IF;
    END IF;
    IF timeout IS NOT NULL AND (timeout < interval '100 milliseconds' OR timeout > interval '5 minutes') THEN
        RAISE EXCEPTION 'timeout must be between 100 ms and 5 minutes, not %', timeout USING ERRCODE = '22023';
    END IF;
    IF max_in_flight IS NOT NULL AND (max_in_flight < 1 OR max_in_flight > 1000) THEN
        RAISE EXCEPTION 'max_in_flight must be between 1 and 1000, not %', max_in_flight USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE FUNCTION @extschema@.outbox_create_endpoint(
    name          text,
    url           text,
    headers       jsonb DEFAULT '{}',
    timeout       interval DEFAULT NULL,
    max_in_flight integer DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    secret text;
BEGIN
    IF outbox_create_endpoint.name IS NULL THEN
        RAISE EXCEPTION 'endpoint name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_create_endpoint.name = '' OR octet_length(outbox_create_endpoint.name) > 255 THEN
        RAISE EXCEPTION 'endpoint name must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF outbox_create_endpoint.headers IS NULL THEN
        RAISE EXCEPTION 'headers must not be NULL' USING ERRCODE = '22004',
              HINT = 'Pass ''{}'' for no extra headers.';
    END IF;
    PERFORM @extschema@._outbox_check_webhook_url(outbox_create_endpoint.url);
    PERFORM @extschema@._outbox_check_endpoint_values(outbox_create_endpoint.headers, outbox_create_endpoint.timeout,
                                                      outbox_create_endpoint.max_in_flight);
    INSERT INTO @extschema@.outbox_endpoints (name, url, headers, timeout_ms, max_in_flight)
    VALUES (outbox_create_endpoint.name, outbox_create_endpoint.url, outbox_create_endpoint.headers,
            coalesce(extract(epoch FROM outbox_create_endpoint.timeout) * 1000,
                     extract(epoch FROM current_setting('outbox.webhook_timeout', true)::interval) * 1000,
                     15000),
            coalesce(outbox_create_endpoint.max_in_flight, 16))
    ON CONFLICT ON CONSTRAINT outbox_endpoints_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint "%" already exists', outbox_create_endpoint.name
            USING ERRCODE = '42710',
                  HINT = 'Choose another name, or change it with outbox_alter_endpoint().';
    END IF;
    secret := @extschema@._outbox_new_webhook_secret();
    INSERT INTO @extschema@.outbox_endpoint_secrets (endpoint, secret) VALUES (outbox_create_endpoint.name, secret);
    RETURN secret;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_create_endpoint(text, text, jsonb, interval, integer) IS
    'Create an HTTP endpoint for webhook subscriptions; returns its signing secret (whsec_...), shown this once.';

-- The endpoint named must exist (42704); locked for the caller's change.
CREATE FUNCTION @extschema@._outbox_lock_endpoint(endpoint text)
RETURNS @extschema@.outbox_endpoints
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep @extschema@.outbox_endpoints;
BEGIN
    IF endpoint IS NULL THEN
        RAISE EXCEPTION 'endpoint name must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO ep FROM @extschema@.outbox_endpoints e WHERE e.name = endpoint FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint "%" does not exist', endpoint
            USING ERRCODE = '42704',
                  HINT = 'outbox_endpoint_stats() lists the endpoints.';
    END IF;
    RETURN ep;
END
$$;

CREATE FUNCTION @extschema@.outbox_rotate_endpoint_secret(name text, grace interval DEFAULT '24 hours')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    secret text;
BEGIN
    IF (@extschema@._outbox_lock_endpoint(outbox_rotate_endpoint_secret.name)).kind <> 'http' THEN
        RAISE EXCEPTION 'endpoint "%" is a Kafka target: it has no signing secret', outbox_rotate_endpoint_secret.name
            USING ERRCODE = '42809';
    END IF;
    IF grace IS NULL OR grace < interval '0' OR grace > interval '30 days' THEN
        RAISE EXCEPTION 'grace must be between 0 and 30 days' USING ERRCODE = '22023';
    END IF;
    -- The current secret signs along with the new one until the grace
    -- period ends; older ones end now.
    DELETE FROM @extschema@.outbox_endpoint_secrets s
     WHERE s.endpoint = outbox_rotate_endpoint_secret.name AND s.expires_at IS NOT NULL;
    UPDATE @extschema@.outbox_endpoint_secrets s SET expires_at = clock_timestamp() + grace
     WHERE s.endpoint = outbox_rotate_endpoint_secret.name AND s.expires_at IS NULL;
    secret := @extschema@._outbox_new_webhook_secret();
    INSERT INTO @extschema@.outbox_endpoint_secrets (endpoint, secret)
    VALUES (outbox_rotate_endpoint_secret.name, secret);
    PERFORM @extschema@._outbox_wake_relay();  -- the sink signs with it from the commit on
    RETURN secret;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_rotate_endpoint_secret(text, interval) IS
    'Give an endpoint a new signing secret (returned, shown this once); the previous one signs too until grace (default 24 hours) has passed.';

CREATE FUNCTION @extschema@.outbox_alter_endpoint(
    name          text,
    url           text DEFAULT NULL,
    headers       jsonb DEFAULT NULL,
    timeout       interval DEFAULT NULL,
    max_in_flight integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (@extschema@._outbox_lock_endpoint(outbox_alter_endpoint.name)).kind <> 'http' THEN
        RAISE EXCEPTION 'endpoint "%" is a Kafka target', outbox_alter_endpoint.name
            USING ERRCODE = '42809',
                  HINT = 'Drop it and create it again with outbox_create_kafka_target().';
    END IF;
    IF outbox_alter_endpoint.url IS NOT NULL THEN
        PERFORM @extschema@._outbox_check_webhook_url(outbox_alter_endpoint.url);
    END IF;
    PERFORM @extschema@._outbox_check_endpoint_values(outbox_alter_endpoint.headers, outbox_alter_endpoint.timeout,
                                                      outbox_alter_endpoint.max_in_flight);
    UPDATE @extschema@.outbox_endpoints e
       SET url = coalesce(outbox_alter_endpoint.url, e.url),
           headers = coalesce(outbox_alter_endpoint.headers, e.headers),
           timeout_ms = coalesce(extract(epoch FROM outbox_alter_endpoint.timeout) * 1000, e.timeout_ms),
           max_in_flight = coalesce(outbox_alter_endpoint.max_in_flight, e.max_in_flight)
     WHERE e.name = outbox_alter_endpoint.name;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_alter_endpoint(text, text, jsonb, interval, integer) IS
    'Change an endpoint''s URL, headers, timeout or maximum requests in flight (NULL keeps a value).';

CREATE FUNCTION @extschema@._outbox_set_endpoint_state(endpoint text, new_state text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM @extschema@._outbox_lock_endpoint(endpoint);
    UPDATE @extschema@.outbox_endpoints e
       SET state = new_state, disabled_reason = NULL, disabled_at = NULL,
           consecutive_failures = CASE WHEN new_state = 'enabled' THEN 0 ELSE e.consecutive_failures END,
           failing_since = CASE WHEN new_state = 'enabled' THEN NULL ELSE e.failing_since END,
           breaker_open_until = CASE WHEN new_state = 'enabled' THEN NULL ELSE e.breaker_open_until END
     WHERE e.name = endpoint;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

CREATE FUNCTION @extschema@.outbox_pause_endpoint(name text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._outbox_set_endpoint_state(name, 'paused') $$;

COMMENT ON FUNCTION @extschema@.outbox_pause_endpoint(text) IS
    'Stop delivering to an endpoint; its deliveries wait (none is dropped) until it is resumed.';

CREATE FUNCTION @extschema@.outbox_resume_endpoint(name text)
RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT @extschema@._outbox_set_endpoint_state(name, 'enabled') $$;

COMMENT ON FUNCTION @extschema@.outbox_resume_endpoint(text) IS
    'Deliver to a paused or disabled endpoint again (its breaker closed), starting with the deliveries that waited.';

CREATE FUNCTION @extschema@.outbox_drop_endpoint(name text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub text;
BEGIN
    PERFORM @extschema@._outbox_lock_endpoint(outbox_drop_endpoint.name);
    SELECT s.name INTO sub FROM @extschema@.outbox_subscriptions s
     WHERE s.endpoint = outbox_drop_endpoint.name ORDER BY s.name LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot drop endpoint "%": subscription "%" delivers to it', outbox_drop_endpoint.name, sub
            USING ERRCODE = '2BP01',
                  HINT = 'Drop its subscriptions first with outbox_unsubscribe().';
    END IF;
    DELETE FROM @extschema@.outbox_endpoint_secrets s WHERE s.endpoint = outbox_drop_endpoint.name;
    DELETE FROM @extschema@.outbox_endpoints e WHERE e.name = outbox_drop_endpoint.name;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_drop_endpoint(text) IS
    'Drop an endpoint and its secrets (refused while a subscription delivers to it).';

CREATE FUNCTION @extschema@.outbox_subscribe_webhook(name text, event_type text, endpoint text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF outbox_subscribe_webhook.name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_subscribe_webhook.event_type IS NULL THEN
        RAISE EXCEPTION 'event_type must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_subscribe_webhook.name = '' OR octet_length(outbox_subscribe_webhook.name) > 255 THEN
        RAISE EXCEPTION 'subscription name must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF outbox_subscribe_webhook.event_type = '' OR octet_length(outbox_subscribe_webhook.event_type) > 255 THEN
        RAISE EXCEPTION 'event_type must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF (@extschema@._outbox_lock_endpoint(outbox_subscribe_webhook.endpoint)).kind <> 'http' THEN
        RAISE EXCEPTION 'endpoint "%" is not an HTTP endpoint', outbox_subscribe_webhook.endpoint
            USING ERRCODE = '42809',
                  HINT = 'Kafka targets take outbox_subscribe_kafka().';
    END IF;
    INSERT INTO @extschema@.outbox_subscriptions (name, event_type, handler, owner, sink, endpoint)
    VALUES (outbox_subscribe_webhook.name, outbox_subscribe_webhook.event_type, NULL, (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user)::regrole,
            'http', outbox_subscribe_webhook.endpoint)
    ON CONFLICT ON CONSTRAINT outbox_subscriptions_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" already exists', outbox_subscribe_webhook.name
            USING ERRCODE = '42710',
                  HINT = 'Choose another name, or drop it first with outbox_unsubscribe().';
    END IF;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_subscribe_webhook(text, text, text) IS
    'Deliver every event whose type matches event_type (''user.*'', ''*'') to an HTTP endpoint, signed (Standard Webhooks).';

-- Kafka targets: rows of outbox_endpoints of kind 'kafka' (so pausing,
-- resuming, dropping, the breaker and outbox_endpoint_stats() work for them
-- as for webhooks). _outbox_check_kafka_target checks the bootstrap servers,
-- the topic template and each producer property (the allow-list, and a value
-- librdkafka takes) with the sink's own code (kafka.hpp); 22023 names what is
-- wrong, never a value.
CREATE FUNCTION @extschema@._outbox_check_kafka_target(bootstrap_servers text, topic text, names text[], "values" text[])
RETURNS void
AS 'MODULE_PATHNAME', '_outbox_check_kafka_target'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION @extschema@.outbox_create_kafka_target(
    name              text,
    bootstrap_servers text,
    topic             text DEFAULT 'outbox.event.${aggregate}',
    properties        jsonb DEFAULT '{}',
    timeout           interval DEFAULT NULL,
    max_in_flight     integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bad text;
BEGIN
    IF outbox_create_kafka_target.name IS NULL THEN
        RAISE EXCEPTION 'target name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_create_kafka_target.name = '' OR octet_length(outbox_create_kafka_target.name) > 255 THEN
        RAISE EXCEPTION 'target name must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF outbox_create_kafka_target.bootstrap_servers IS NULL THEN
        RAISE EXCEPTION 'bootstrap_servers must not be NULL' USING ERRCODE = '22004',
              HINT = 'Name the brokers as host:port[,host:port...].';
    END IF;
    IF outbox_create_kafka_target.topic IS NULL THEN
        RAISE EXCEPTION 'topic must not be NULL' USING ERRCODE = '22004',
              HINT = 'Leave it out for the default, outbox.event.${aggregate}.';
    END IF;
    IF outbox_create_kafka_target.properties IS NULL THEN
        RAISE EXCEPTION 'properties must not be NULL' USING ERRCODE = '22004',
              HINT = 'Pass ''{}'' for none.';
    END IF;
    IF jsonb_typeof(outbox_create_kafka_target.properties) <> 'object' THEN
        RAISE EXCEPTION 'properties must be a JSON object of strings, not %',
                        jsonb_typeof(outbox_create_kafka_target.properties)
            USING ERRCODE = '22023';
    END IF;
    SELECT k INTO bad FROM jsonb_each(outbox_create_kafka_target.properties) AS p(k, v)
     WHERE jsonb_typeof(v) <> 'string' ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'property "%" must be a string', bad USING ERRCODE = '22023';
    END IF;
    PERFORM @extschema@._outbox_check_kafka_target(
        outbox_create_kafka_target.bootstrap_servers, outbox_create_kafka_target.topic,
        ARRAY(SELECT k FROM jsonb_each_text(outbox_create_kafka_target.properties) AS p(k, v) ORDER BY k),
        ARRAY(SELECT v FROM jsonb_each_text(outbox_create_kafka_target.properties) AS p(k, v) ORDER BY k));
    PERFORM @extschema@._outbox_check_endpoint_values(NULL, outbox_create_kafka_target.timeout,
                                                      outbox_create_kafka_target.max_in_flight);
    INSERT INTO @extschema@.outbox_endpoints (name, kind, bootstrap_servers, topic, properties, timeout_ms, max_in_flight)
    VALUES (outbox_create_kafka_target.name, 'kafka', outbox_create_kafka_target.bootstrap_servers,
            outbox_create_kafka_target.topic, outbox_create_kafka_target.properties,
            coalesce(extract(epoch FROM outbox_create_kafka_target.timeout) * 1000, 30000),
            coalesce(outbox_create_kafka_target.max_in_flight, 1000))
    ON CONFLICT ON CONSTRAINT outbox_endpoints_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'endpoint "%" already exists', outbox_create_kafka_target.name
            USING ERRCODE = '42710',
                  HINT = 'Choose another name (Kafka targets and HTTP endpoints share names).';
    END IF;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_create_kafka_target(text, text, text, jsonb, interval, integer) IS
    'Create a Kafka target for Kafka subscriptions: its brokers, its topic template (${type}, ${aggregate}, or fixed) and allowed producer properties; TLS/SASL credentials come from the file outbox.kafka_credentials_file names.';

CREATE FUNCTION @extschema@.outbox_alter_kafka_target(
    name              text,
    bootstrap_servers text DEFAULT NULL,
    topic             text DEFAULT NULL,
    properties        jsonb DEFAULT NULL,
    timeout           interval DEFAULT NULL,
    max_in_flight     integer DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ep @extschema@.outbox_endpoints;
    props jsonb;
    bad text;
BEGIN
    ep := @extschema@._outbox_lock_endpoint(outbox_alter_kafka_target.name);
    IF ep.kind <> 'kafka' THEN
        RAISE EXCEPTION 'endpoint "%" is not a Kafka target', outbox_alter_kafka_target.name
            USING ERRCODE = '42809',
                  HINT = 'HTTP endpoints take outbox_alter_endpoint().';
    END IF;
    props := coalesce(outbox_alter_kafka_target.properties, ep.properties);
    IF jsonb_typeof(props) <> 'object' THEN
        RAISE EXCEPTION 'properties must be a JSON object of strings, not %', jsonb_typeof(props)
            USING ERRCODE = '22023';
    END IF;
    SELECT k INTO bad FROM jsonb_each(props) AS p(k, v) WHERE jsonb_typeof(v) <> 'string' ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'property "%" must be a string', bad USING ERRCODE = '22023';
    END IF;
    PERFORM @extschema@._outbox_check_kafka_target(
        coalesce(outbox_alter_kafka_target.bootstrap_servers, ep.bootstrap_servers),
        coalesce(outbox_alter_kafka_target.topic, ep.topic),
        ARRAY(SELECT k FROM jsonb_each_text(props) AS p(k, v) ORDER BY k),
        ARRAY(SELECT v FROM jsonb_each_text(props) AS p(k, v) ORDER BY k));
    PERFORM @extschema@._outbox_check_endpoint_values(NULL, outbox_alter_kafka_target.timeout,
                                                      outbox_alter_kafka_target.max_in_flight);
    UPDATE @extschema@.outbox_endpoints e
       SET bootstrap_servers = coalesce(outbox_alter_kafka_target.bootstrap_servers, e.bootstrap_servers),
           topic = coalesce(outbox_alter_kafka_target.topic, e.topic),
           properties = props,
           timeout_ms = coalesce(extract(epoch FROM outbox_alter_kafka_target.timeout) * 1000, e.timeout_ms),
           max_in_flight = coalesce(outbox_alter_kafka_target.max_in_flight, e.max_in_flight)
     WHERE e.name = outbox_alter_kafka_target.name;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_alter_kafka_target(text, text, text, jsonb, interval, integer) IS
    'Change a Kafka target: its brokers, topic template, producer properties (the whole object: pass every property to keep), timeout or max_in_flight; NULL keeps a value. The sink makes a new producer with the new settings.';

CREATE FUNCTION @extschema@.outbox_subscribe_kafka(name text, event_type text, target text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF outbox_subscribe_kafka.name IS NULL THEN
        RAISE EXCEPTION 'subscription name must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_subscribe_kafka.event_type IS NULL THEN
        RAISE EXCEPTION 'event_type must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF outbox_subscribe_kafka.name = '' OR octet_length(outbox_subscribe_kafka.name) > 255 THEN
        RAISE EXCEPTION 'subscription name must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF outbox_subscribe_kafka.event_type = '' OR octet_length(outbox_subscribe_kafka.event_type) > 255 THEN
        RAISE EXCEPTION 'event_type must have 1 to 255 bytes' USING ERRCODE = '22023';
    END IF;
    IF (@extschema@._outbox_lock_endpoint(outbox_subscribe_kafka.target)).kind <> 'kafka' THEN
        RAISE EXCEPTION 'endpoint "%" is not a Kafka target', outbox_subscribe_kafka.target
            USING ERRCODE = '42809',
                  HINT = 'Create one with outbox_create_kafka_target(); HTTP endpoints take outbox_subscribe_webhook().';
    END IF;
    INSERT INTO @extschema@.outbox_subscriptions (name, event_type, handler, owner, sink, endpoint)
    VALUES (outbox_subscribe_kafka.name, outbox_subscribe_kafka.event_type, NULL,
            (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user)::regrole,
            'kafka', outbox_subscribe_kafka.target)
    ON CONFLICT ON CONSTRAINT outbox_subscriptions_pkey DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscription "%" already exists', outbox_subscribe_kafka.name
            USING ERRCODE = '42710',
                  HINT = 'Choose another name, or drop it first with outbox_unsubscribe().';
    END IF;
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_subscribe_kafka(text, text, text) IS
    'Deliver every event whose type matches event_type (''user.*'', ''*'') to a Kafka target: key = ordering key, value = payload, headers id and type (Debezium''s outbox layout).';

CREATE FUNCTION @extschema@.outbox_endpoint_stats()
RETURNS TABLE (
    endpoint             text,
    kind                 text,
    url                  text,
    state                text,
    disabled_reason      text,
    breaker              text,
    pending              bigint,
    in_flight            bigint,
    failed               bigint,
    oldest_pending_age   interval,
    consecutive_failures integer,
    last_success_at      timestamptz,
    last_error           text,
    last_error_at        timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.name, e.kind,
           CASE WHEN e.kind = 'kafka' THEN e.bootstrap_servers ELSE @extschema@._outbox_redact_url(e.url) END,
           e.state, e.disabled_reason,
           CASE WHEN e.breaker_open_until IS NULL THEN 'closed'
                WHEN e.breaker_open_until > now() THEN 'open' ELSE 'half-open' END,
           count(*) FILTER (WHERE d.status = 'created'),
           count(*) FILTER (WHERE d.status = 'active'),
           count(*) FILTER (WHERE d.status = 'failed'),
           now() - min(d.available_at) FILTER (WHERE d.status IN ('created', 'active') AND d.available_at <= now()),
           e.consecutive_failures, e.last_success_at, e.last_error, e.last_error_at
      FROM @extschema@.outbox_endpoints e
      LEFT JOIN @extschema@.outbox_subscriptions s ON s.endpoint = e.name
      LEFT JOIN @extschema@.outbox_deliveries d ON d.subscription = s.name AND d.completed_on IS NULL
     GROUP BY e.name
     ORDER BY e.name
$$;

COMMENT ON FUNCTION @extschema@.outbox_endpoint_stats() IS
    'Per endpoint (kind http or kafka; url the webhook URL, redacted, or the Kafka target''s bootstrap servers): its state (enabled, paused, disabled and why), breaker, deliveries pending, in flight and failed, oldest pending age, last success and last error.';

-- A relay worker already serving this database is waiting for the extension:
-- wake it when this CREATE EXTENSION commits.
SELECT @extschema@._outbox_wake_relay();

-- ============================================================================
-- 5b. Webhooks: signing (Standard Webhooks)
-- ============================================================================

-- The webhook-signature header the HTTP sink sends: "v1,<base64 HMAC-SHA256
-- of id.timestamp.body>", keyed with the base64-decoded part of a "whsec_"
-- secret; several secrets, separated by spaces, sign once each (a rotation).
-- Not STRICT, so that a NULL argument gets an error naming it. Granted to
-- outbox_admin only: whoever calls it holds a secret (and a literal secret in
-- a statement can reach the server log).
CREATE FUNCTION @extschema@.outbox_webhook_signature(
    secret      text,
    id          text,
    "timestamp" bigint,
    body        text)
RETURNS text
AS 'MODULE_PATHNAME', 'outbox_webhook_signature'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.outbox_webhook_signature(text, text, bigint, text) IS
    'The Standard Webhooks webhook-signature header value (v1,<base64 HMAC-SHA256 of "id.timestamp.body">) for a whsec_ secret, or one signature per space-separated secret.';

-- ============================================================================
-- 6. Privileges: nothing for PUBLIC; each role gets what its job needs.
-- ============================================================================

GRANT outbox_publisher, outbox_consumer TO outbox_admin;

REVOKE ALL ON FUNCTION @extschema@._outbox_check_ids(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@._outbox_check_failed(uuid[], text) FROM PUBLIC;

REVOKE ALL ON TABLE @extschema@.outbox_events, @extschema@.outbox_events_archive,
                    @extschema@.outbox_events_archive_default FROM PUBLIC;
REVOKE ALL ON SEQUENCE @extschema@.outbox_lease_token_seq FROM PUBLIC;
REVOKE ALL ON FUNCTION
    @extschema@.outbox_publish(text, jsonb, text, jsonb, timestamptz, interval, uuid),
    @extschema@.outbox_publish_batch(jsonb),
    @extschema@.outbox_claim(integer, interval, text, text[]),
    @extschema@.outbox_claim_xact(integer, text, text[]),
    @extschema@.outbox_heartbeat(uuid[], bigint, interval),
    @extschema@.outbox_complete(uuid[], bigint),
    @extschema@.outbox_fail(uuid, bigint, text, interval, boolean),
    @extschema@.outbox_release(uuid[], bigint),
    @extschema@.outbox_failed_events(integer),
    @extschema@.outbox_retry(uuid[]),
    @extschema@.outbox_discard(uuid[]),
    @extschema@.outbox_replay(uuid),
    @extschema@.outbox_stats(),
    @extschema@.outbox_archive_maintain(interval, integer)
FROM PUBLIC;

GRANT USAGE ON SCHEMA @extschema@ TO outbox_publisher, outbox_consumer, outbox_admin;

GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_publish(text, jsonb, text, jsonb, timestamptz, interval, uuid),
    @extschema@.outbox_publish_batch(jsonb)
TO outbox_publisher;

GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_claim(integer, interval, text, text[]),
    @extschema@.outbox_claim_xact(integer, text, text[]),
    @extschema@.outbox_heartbeat(uuid[], bigint, interval),
    @extschema@.outbox_complete(uuid[], bigint),
    @extschema@.outbox_fail(uuid, bigint, text, interval, boolean),
    @extschema@.outbox_release(uuid[], bigint)
TO outbox_consumer;
GRANT SELECT ON TABLE @extschema@.outbox_events, @extschema@.outbox_events_archive
TO outbox_consumer;

GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_failed_events(integer),
    @extschema@.outbox_retry(uuid[]),
    @extschema@.outbox_discard(uuid[]),
    @extschema@.outbox_replay(uuid),
    @extschema@.outbox_stats(),
    @extschema@.outbox_archive_maintain(interval, integer)
TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_stats() TO pg_monitor;

REVOKE ALL ON FUNCTION @extschema@._outbox_subscription_set_paused(text, boolean) FROM PUBLIC;

REVOKE ALL ON TABLE @extschema@.outbox_subscriptions FROM PUBLIC;
REVOKE ALL ON FUNCTION
    @extschema@.outbox_subscribe(text, text, regproc, regrole),
    @extschema@._outbox_wake_relay(),
    @extschema@.outbox_pause_subscription(text),
    @extschema@.outbox_resume_subscription(text),
    @extschema@.outbox_unsubscribe(text),
    @extschema@.outbox_worker_stats()
FROM PUBLIC;
GRANT SELECT ON TABLE @extschema@.outbox_subscriptions TO outbox_admin;

REVOKE ALL ON TABLE @extschema@.outbox_deliveries FROM PUBLIC;
REVOKE ALL ON FUNCTION
    @extschema@._outbox_archive_settled(uuid[]),
    @extschema@._outbox_check_subscription(text),
    @extschema@._outbox_check_failed_deliveries(text, uuid[], text),
    @extschema@.outbox_failed_deliveries(text, integer),
    @extschema@.outbox_retry_deliveries(text, uuid[]),
    @extschema@.outbox_discard_deliveries(text, uuid[]),
    @extschema@.outbox_replay(uuid, text),
    @extschema@.outbox_delivery_stats()
FROM PUBLIC;
GRANT SELECT ON TABLE @extschema@.outbox_deliveries TO outbox_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_failed_deliveries(text, integer),
    @extschema@.outbox_retry_deliveries(text, uuid[]),
    @extschema@.outbox_discard_deliveries(text, uuid[]),
    @extschema@.outbox_replay(uuid, text),
    @extschema@.outbox_delivery_stats()
TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_delivery_stats() TO pg_monitor;

REVOKE ALL ON TABLE @extschema@.outbox_endpoints, @extschema@.outbox_endpoint_secrets FROM PUBLIC;
REVOKE ALL ON FUNCTION
    @extschema@._outbox_check_webhook_url(text),
    @extschema@._outbox_new_webhook_secret(),
    @extschema@._outbox_redact_url(text),
    @extschema@._outbox_check_endpoint_values(jsonb, interval, integer),
    @extschema@.outbox_create_endpoint(text, text, jsonb, interval, integer),
    @extschema@._outbox_lock_endpoint(text),
    @extschema@.outbox_rotate_endpoint_secret(text, interval),
    @extschema@.outbox_alter_endpoint(text, text, jsonb, interval, integer),
    @extschema@._outbox_set_endpoint_state(text, text),
    @extschema@.outbox_pause_endpoint(text),
    @extschema@.outbox_resume_endpoint(text),
    @extschema@.outbox_drop_endpoint(text),
    @extschema@.outbox_subscribe_webhook(text, text, text),
    @extschema@._outbox_check_kafka_target(text, text, text[], text[]),
    @extschema@.outbox_create_kafka_target(text, text, text, jsonb, interval, integer),
    @extschema@.outbox_alter_kafka_target(text, text, text, jsonb, interval, integer),
    @extschema@.outbox_subscribe_kafka(text, text, text),
    @extschema@.outbox_endpoint_stats()
FROM PUBLIC;
GRANT SELECT ON TABLE @extschema@.outbox_endpoints TO outbox_admin;
GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_create_endpoint(text, text, jsonb, interval, integer),
    @extschema@.outbox_rotate_endpoint_secret(text, interval),
    @extschema@.outbox_alter_endpoint(text, text, jsonb, interval, integer),
    @extschema@.outbox_pause_endpoint(text),
    @extschema@.outbox_resume_endpoint(text),
    @extschema@.outbox_drop_endpoint(text),
    @extschema@.outbox_subscribe_webhook(text, text, text),
    @extschema@.outbox_create_kafka_target(text, text, text, jsonb, interval, integer),
    @extschema@.outbox_alter_kafka_target(text, text, text, jsonb, interval, integer),
    @extschema@.outbox_subscribe_kafka(text, text, text),
    @extschema@.outbox_endpoint_stats()
TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_endpoint_stats() TO pg_monitor;
GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_subscribe(text, text, regproc, regrole),
    @extschema@._outbox_wake_relay(),
    @extschema@.outbox_pause_subscription(text),
    @extschema@.outbox_resume_subscription(text),
    @extschema@.outbox_unsubscribe(text),
    @extschema@.outbox_worker_stats()
TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_worker_stats() TO pg_monitor;

REVOKE ALL ON FUNCTION @extschema@.outbox_webhook_signature(text, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_webhook_signature(text, text, bigint, text) TO outbox_admin;

-- ============================================================================
-- 6. Metrics: what an operator watches, scrapes and alerts on
-- ============================================================================

-- The counters of this database in shared memory (metrics.cpp): one row per
-- subscription and consumer name seen, and the total. Empty when the library
-- is not preloaded.
CREATE FUNCTION @extschema@._outbox_metric_counters(
    OUT kind           text,
    OUT name           text,
    OUT delivered      bigint,
    OUT failed         bigint,
    OUT retried        bigint,
    OUT reclaimed      bigint,
    OUT lag_p50        double precision,
    OUT lag_p99        double precision,
    OUT lag_max        double precision,
    OUT lag_recent     bigint,
    OUT lag_bounds     double precision[],
    OUT lag_buckets    bigint[],
    OUT lag_sum        double precision,
    OUT lag_count      bigint,
    OUT since          timestamptz,
    OUT dropped        bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', '_outbox_metric_counters'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- One row per subscription, per consumer name seen by outbox_claim() and
-- outbox_claim_xact() (name NULL: claims without a name), and the total:
-- what waits (due now, scheduled for later), what is in flight, what failed
-- and how old the oldest due item is, from the tables; what was delivered,
-- failed for good, retried and reclaimed since counters_since, and the
-- commit-to-delivery lag (from the event's created_on to the delivery
-- settled) of the last minute and as a histogram, from shared memory.
CREATE FUNCTION @extschema@.outbox_metrics()
RETURNS TABLE (
    database                   text,
    kind                       text,
    name                       text,
    sink                       text,
    paused                     boolean,
    endpoint                   text,
    endpoint_state             text,
    pending                    bigint,
    due                        bigint,
    scheduled                  bigint,
    in_flight                  bigint,
    failed                     bigint,
    oldest_pending_age_seconds double precision,
    delivered_total            bigint,
    failed_total               bigint,
    retried_total              bigint,
    reclaimed_total            bigint,
    lag_p50_seconds            double precision,
    lag_p99_seconds            double precision,
    lag_max_seconds            double precision,
    lag_seconds                double precision[],
    lag_seconds_bucket         bigint[],
    lag_seconds_sum            double precision,
    lag_seconds_count          bigint,
    counters_since             timestamptz,
    counters_dropped           bigint)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH c AS (SELECT * FROM @extschema@._outbox_metric_counters()),
    subs AS (
        SELECT s.name, s.sink, s.paused, s.endpoint,
               -- The subscription's pattern as LIKE matches it (patterns.hpp);
               -- chr(92) is a backslash, whatever standard_conforming_strings says.
               replace(replace(replace(replace(s.event_type, chr(92), chr(92) || chr(92)),
                                       '%', chr(92) || '%'), '_', chr(92) || '_'), '*', '%') AS pattern
          FROM @extschema@.outbox_subscriptions s),
    -- Events not handed over yet, per type (one scan of the outbox), then for
    -- each subscription whose pattern matches the type (the relay hands them
    -- over, or delivers them, soon).
    types AS (
        SELECT e.type,
               count(*) FILTER (WHERE e.available_at <= now()) AS due,
               count(*) FILTER (WHERE e.available_at > now()) AS scheduled,
               min(e.available_at) FILTER (WHERE e.available_at <= now()) AS oldest
          FROM @extschema@.outbox_events e
         WHERE e.status = 'created' AND e.dispatched_at IS NULL
         GROUP BY e.type),
    waiting AS (
        SELECT s.name, sum(t.due)::bigint AS due, sum(t.scheduled)::bigint AS scheduled, min(t.oldest) AS oldest
          FROM subs s JOIN types t ON t.type LIKE s.pattern
         GROUP BY s.name),
    deliveries AS (
        SELECT d.subscription AS name,
               count(*) FILTER (WHERE d.status = 'created' AND d.available_at <= now()) AS due,
               count(*) FILTER (WHERE d.status = 'created' AND d.available_at > now()) AS scheduled,
               count(*) FILTER (WHERE d.status = 'active') AS in_flight,
               count(*) FILTER (WHERE d.status = 'failed') AS failed,
               min(d.available_at) FILTER (WHERE d.status = 'created' AND d.available_at <= now()) AS oldest
          FROM @extschema@.outbox_deliveries d
         WHERE d.completed_on IS NULL
         GROUP BY d.subscription),
    -- Events held by consumers' leases, per consumer.
    held AS (
        SELECT e.lease_owner AS name, count(*) AS in_flight
          FROM @extschema@.outbox_events e
         WHERE e.status = 'active' AND e.dispatched_at IS NULL
         GROUP BY e.lease_owner),
    consumers AS (
        SELECT c.name FROM c WHERE c.kind = 'consumer'
        UNION
        SELECT h.name FROM held h),
    events AS (
        SELECT count(*) FILTER (WHERE e.status = 'created' AND e.available_at <= now()) AS due,
               count(*) FILTER (WHERE e.status = 'created' AND e.available_at > now()) AS scheduled,
               -- Held by consumers' leases (an event handed over is in flight
               -- through its deliveries, counted below).
               count(*) FILTER (WHERE e.status = 'active' AND e.dispatched_at IS NULL) AS in_flight,
               count(*) FILTER (WHERE e.status = 'failed') AS failed,
               min(e.available_at) FILTER (WHERE e.status = 'created' AND e.available_at <= now()) AS oldest
          FROM @extschema@.outbox_events e),
    rows AS (
        SELECT 'subscription' AS kind, s.name, s.sink, s.paused, s.endpoint,
               CASE WHEN s.endpoint IS NULL THEN NULL
                    WHEN en.state <> 'enabled' THEN en.state
                    WHEN en.breaker_open_until IS NULL THEN 'enabled'
                    WHEN en.breaker_open_until > now() THEN 'breaker open'
                    ELSE 'breaker half-open' END AS endpoint_state,
               coalesce(w.due, 0) + coalesce(d.due, 0) AS due,
               coalesce(w.scheduled, 0) + coalesce(d.scheduled, 0) AS scheduled,
               coalesce(d.in_flight, 0) AS in_flight,
               coalesce(d.failed, 0) AS failed,
               least(w.oldest, d.oldest) AS oldest
          FROM subs s
          LEFT JOIN waiting w ON w.name = s.name
          LEFT JOIN deliveries d ON d.name = s.name
          LEFT JOIN @extschema@.outbox_endpoints en ON en.name = s.endpoint
        UNION ALL
        SELECT 'consumer', k.name, NULL, NULL, NULL, NULL, NULL, NULL, coalesce(h.in_flight, 0), NULL, NULL
          FROM consumers k LEFT JOIN held h ON h.name IS NOT DISTINCT FROM k.name
        UNION ALL
        SELECT 'total', NULL, NULL, NULL, NULL, NULL,
               ev.due + coalesce((SELECT sum(d.due) FROM deliveries d), 0),
               ev.scheduled + coalesce((SELECT sum(d.scheduled) FROM deliveries d), 0),
               ev.in_flight + coalesce((SELECT sum(d.in_flight) FROM deliveries d), 0),
               ev.failed + coalesce((SELECT sum(d.failed) FROM deliveries d), 0),
               least(ev.oldest, (SELECT min(d.oldest) FROM deliveries d))
          FROM events ev)
    SELECT current_database()::text, r.kind, r.name, r.sink, r.paused, r.endpoint, r.endpoint_state,
           r.due + r.scheduled, r.due, r.scheduled, r.in_flight, r.failed,
           extract(epoch FROM now() - r.oldest)::double precision,
           coalesce(c.delivered, 0), coalesce(c.failed, 0), coalesce(c.retried, 0), coalesce(c.reclaimed, 0),
           c.lag_p50, c.lag_p99, c.lag_max,
           coalesce(c.lag_bounds, (SELECT b.lag_bounds FROM c b LIMIT 1)),
           c.lag_buckets, coalesce(c.lag_sum, 0), coalesce(c.lag_count, 0),
           c.since, c.dropped
      FROM rows r
      LEFT JOIN c ON c.kind = r.kind AND c.name IS NOT DISTINCT FROM r.name
     ORDER BY CASE r.kind WHEN 'subscription' THEN 1 WHEN 'consumer' THEN 2 ELSE 3 END, r.name
$$;

COMMENT ON FUNCTION @extschema@.outbox_metrics() IS
    'Per subscription, per consumer name and in total: pending (due now + scheduled), in flight, failed, oldest pending age; delivered, failed, retried and reclaimed counts; commit-to-delivery lag p50/p99/max over the last minute and as a histogram; each endpoint''s state.';

CREATE FUNCTION @extschema@.outbox_metrics_reset()
RETURNS integer
AS 'MODULE_PATHNAME', 'outbox_metrics_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION @extschema@.outbox_metrics_reset() IS
    'Set this database''s delivery counters and lag histograms back to zero; returns how many names were cleared.';

REVOKE ALL ON FUNCTION
    @extschema@._outbox_metric_counters(),
    @extschema@.outbox_metrics(),
    @extschema@.outbox_metrics_reset()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_metrics(), @extschema@.outbox_metrics_reset() TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_metrics() TO pg_monitor;
