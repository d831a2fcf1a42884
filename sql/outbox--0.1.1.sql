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
    -- delivery time, the retry time after a failure, or (while active) the end
    -- of the lease, after which another consumer may reclaim it.
    available_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- Failed attempts so far (a failure reported by a consumer, or a lease
    -- that expired and was reclaimed). Attempt number = retry_count + 1.
    retry_count       integer NOT NULL DEFAULT 0,
    last_error        text,
    -- When a failed attempt scheduled the next one (NULL otherwise).
    next_retry_at     timestamptz,
    -- The current (or last) lease: when it was taken, the last heartbeat,
    -- its length, who holds it and its fencing token.
    started_on        timestamptz,
    keep_alive        timestamptz,
    expire_in_seconds integer NOT NULL DEFAULT 30,
    lease_owner       text,
    lease_token       bigint,
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

-- The claim path: due events, oldest first.
CREATE INDEX outbox_events_claim_idx ON @extschema@.outbox_events (available_at, seq)
    WHERE status OPERATOR(pg_catalog.=) ANY ('{created,active}'::@extschema@.outbox_status[]);
-- Per-key ordering: is there an earlier event with the same key?
CREATE INDEX outbox_events_ordering_idx ON @extschema@.outbox_events (ordering_key, seq)
    WHERE ordering_key IS NOT NULL;
-- Operations: failed events, newest first.
CREATE INDEX outbox_events_failed_idx ON @extschema@.outbox_events (created_on)
    WHERE status OPERATOR(pg_catalog.=) 'failed'::@extschema@.outbox_status;

-- A queue table: rows come and go fast. Vacuum it early and without sleeping.
ALTER TABLE @extschema@.outbox_events SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02
);

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
    lease_owner       text
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
         WHERE e.status = 'failed'
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
           now() - min(e.available_at) FILTER (WHERE e.status IN ('created', 'active')
                                                   AND e.available_at <= now()),
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
--    event, in the transaction that moves the event to the archive. Their
--    table, then their functions (C, then SQL), with the relay's statistics.
-- ============================================================================

CREATE TABLE @extschema@.outbox_subscriptions (
    name        text NOT NULL,
    -- An event type ('user.created') or a pattern ('user.*', '*').
    event_type  text NOT NULL,
    -- A function taking one outbox_events row; it runs as owner.
    handler     regprocedure NOT NULL,
    owner       regrole NOT NULL,
    -- A paused subscription receives nothing, and the events it matches wait
    -- in outbox_events (even those other subscriptions match) until it resumes.
    paused      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT outbox_subscriptions_pkey PRIMARY KEY (name),
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
    last_error_at timestamptz)
AS 'MODULE_PATHNAME', 'outbox_worker_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION @extschema@.outbox_worker_stats() IS
    'One row per database the relay serves: its worker''s pid, what it is doing, and its counters (delivered, failed, retried, reclaimed, batches) since the server started.';

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
    PERFORM @extschema@._outbox_wake_relay();
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_unsubscribe(text) IS
    'Drop a subscription. Events it alone matched stay in outbox_events, for SQL consumers or a new subscription.';

-- A relay worker already serving this database is waiting for the extension:
-- wake it when this CREATE EXTENSION commits.
SELECT @extschema@._outbox_wake_relay();

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
GRANT EXECUTE ON FUNCTION
    @extschema@.outbox_subscribe(text, text, regproc, regrole),
    @extschema@._outbox_wake_relay(),
    @extschema@.outbox_pause_subscription(text),
    @extschema@.outbox_resume_subscription(text),
    @extschema@.outbox_unsubscribe(text),
    @extschema@.outbox_worker_stats()
TO outbox_admin;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_worker_stats() TO pg_monitor;
