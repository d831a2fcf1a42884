-- outbox 0.1.1 -> 0.2.0: delivery state per (event, subscription).
--
-- The relay hands each event to the subscriptions its type matches: a row
-- per (event, subscription) in the new table outbox_deliveries carries that
-- delivery's attempts, backoff, last error and failed state, and the event
-- moves to the archive once all are settled, with each outcome (the new
-- column outbox_events_archive.deliveries). Events stored before the update
-- are handed over as they become due; none is lost or delivered twice.
-- Existing rows, roles and privileges stay as they are.

\echo Use "ALTER EXTENSION outbox UPDATE" to load this file. \quit

-- When the relay handed the event to its subscriptions (NULL until then).
ALTER TABLE @extschema@.outbox_events ADD COLUMN dispatched_at timestamptz;

-- The claim index leaves the events handed over out.
DROP INDEX @extschema@.outbox_events_claim_idx;
CREATE INDEX outbox_events_claim_idx ON @extschema@.outbox_events (available_at, seq)
    WHERE status OPERATOR(pg_catalog.=) ANY ('{created,active}'::@extschema@.outbox_status[])
      AND dispatched_at IS NULL;

-- Each subscription's outcome, for the events delivered through them.
ALTER TABLE @extschema@.outbox_events_archive ADD COLUMN deliveries jsonb;

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

CREATE OR REPLACE FUNCTION @extschema@.outbox_unsubscribe(name text)
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
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM 1 FROM @extschema@.outbox_events e WHERE e.id = ANY (ids) ORDER BY e.id FOR UPDATE;
    WITH settled AS (
        SELECT e.id FROM @extschema@.outbox_events e
         WHERE e.id = ANY (ids) AND e.dispatched_at IS NOT NULL
           AND NOT EXISTS (SELECT FROM @extschema@.outbox_deliveries d
                            WHERE d.event_id = e.id AND d.completed_on IS NULL)),
    outcomes AS (
        DELETE FROM @extschema@.outbox_deliveries d USING settled s
         WHERE d.event_id = s.id RETURNING d.*),
    per_event AS (
        SELECT s.id,
               coalesce(bool_and(o.status = 'completed'), true) AS ok,
               -- The failed attempts of the delivery that needed the most.
               coalesce(max(o.attempts - CASE WHEN o.status = 'completed' THEN 1 ELSE 0 END), 0) AS failures,
               (array_agg(o.last_error ORDER BY o.completed_on DESC)
                    FILTER (WHERE o.last_error IS NOT NULL))[1] AS last_error,
               coalesce(jsonb_object_agg(o.subscription, jsonb_strip_nulls(jsonb_build_object(
                            'status', o.status, 'attempts', o.attempts, 'completed_on', o.completed_on,
                            'last_error', o.last_error, 'last_status', o.last_status)))
                            FILTER (WHERE o.subscription IS NOT NULL),
                        '{}'::jsonb) AS deliveries
          FROM settled s LEFT JOIN outcomes o ON o.event_id = s.id
         GROUP BY s.id),
    gone AS (
        DELETE FROM @extschema@.outbox_events e USING per_event p
         WHERE e.id = p.id
        RETURNING e.*, p.ok, p.failures, p.last_error AS delivery_error, p.deliveries)
    INSERT INTO @extschema@.outbox_events_archive
           (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,
            retry_count, last_error, started_on, completed_on, lease_owner, deliveries)
    SELECT g.id, g.seq, g.type, g.payload, g.headers, g.ordering_key,
           CASE WHEN g.ok THEN 'completed' ELSE 'failed' END::@extschema@.outbox_status,
           g.occurred_at, g.created_on, g.retry_count + g.failures, coalesce(g.delivery_error, g.last_error),
           g.dispatched_at, statement_timestamp(), 'outbox relay', g.deliveries
      FROM gone g;
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

-- Once the deliveries are locked: every id must name a failed delivery of
-- the subscription, not settled yet.
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
     WHERE d.status IS DISTINCT FROM 'failed' OR d.completed_on IS NOT NULL
     LIMIT 1;
    IF bad IS NULL THEN
        RETURN;
    ELSIF bad_status IS NULL THEN
        RAISE EXCEPTION 'cannot % the delivery of event % to subscription "%": there is no such delivery', action, bad, sub
            USING ERRCODE = 'P0002',
                  HINT = 'outbox_failed_deliveries() lists the failed deliveries; settled ones are in outbox_events_archive.deliveries.';
    ELSIF bad_settled THEN
        RAISE EXCEPTION 'cannot % the delivery of event % to subscription "%": it was discarded', action, bad, sub
            USING ERRCODE = '55000';
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
       SET completed_on = now()
     WHERE d.subscription = outbox_discard_deliveries.subscription AND d.event_id = ANY (ids);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM @extschema@._outbox_archive_settled(ids);
    -- Later deliveries of the same ordering keys may go now.
    PERFORM @extschema@._outbox_wake_relay();
    RETURN n;
END
$$;

COMMENT ON FUNCTION @extschema@.outbox_discard_deliveries(text, uuid[]) IS
    'Give up failed deliveries of a subscription (unblocks their ordering keys there); an event whose deliveries are all settled moves to the archive (status failed); returns how many.';

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

-- The Standard Webhooks signature, as the HTTP sink signs.
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

REVOKE ALL ON FUNCTION @extschema@.outbox_webhook_signature(text, text, bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.outbox_webhook_signature(text, text, bigint, text) TO outbox_admin;
