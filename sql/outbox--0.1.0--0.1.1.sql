-- outbox 0.1.0 -> 0.1.1. Only functions change; tables, types, roles and
-- privileges stay as they are (CREATE OR REPLACE keeps each function's owner,
-- grants and comment; the attributes are given again, unchanged).

\echo Use "ALTER EXTENSION outbox UPDATE" to load this file. \quit

-- outbox_retry and outbox_discard refuse their ids array as the C functions
-- do: a multi-dimensional array (2202E, was 0A000) and more than 100000 ids
-- (54000, was P0002), checked before any event is locked.
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
REVOKE ALL ON FUNCTION @extschema@._outbox_check_ids(uuid[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION @extschema@._outbox_check_failed(ids uuid[], action text)
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

CREATE OR REPLACE FUNCTION @extschema@.outbox_retry(ids uuid[])
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

CREATE OR REPLACE FUNCTION @extschema@.outbox_discard(ids uuid[])
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

-- outbox_archive_maintain: a relation squatting a day partition's name is
-- refused (42P07) instead of taken for the partition; a retention over 5000
-- years is refused naming the argument (22023, was 22008 from the arithmetic).
CREATE OR REPLACE FUNCTION @extschema@.outbox_archive_maintain(
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

-- A NULL subscription name: 22004 (was 42704 'subscription "<NULL>" does not
-- exist'). outbox_pause_subscription and outbox_resume_subscription call this.
CREATE OR REPLACE FUNCTION @extschema@._outbox_subscription_set_paused(sub text, pause boolean)
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

CREATE OR REPLACE FUNCTION @extschema@.outbox_unsubscribe(name text)
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
