-- The database the examples run against (run by examples/run.sh as superuser,
-- directly on the server; the clients themselves go through PgBouncer).

CREATE EXTENSION outbox;

-- The application's role: publishes and consumes; owns its business tables.
CREATE ROLE app LOGIN PASSWORD 'app-secret' IN ROLE outbox_publisher, outbox_consumer;
-- The same application with the guard set to refuse publishing outside a
-- transaction. A per-role (or per-database) setting is applied by the server
-- when PgBouncer opens a server connection: it needs no session SET.
CREATE ROLE app_strict LOGIN PASSWORD 'app-secret' IN ROLE outbox_publisher, outbox_consumer;
ALTER ROLE app_strict SET outbox.require_transaction = error;

-- PostgreSQL 15: CREATE on schema public is the owner's only.
GRANT CREATE ON SCHEMA public TO app;

SET ROLE app;

-- The business table the examples write next to their events.
CREATE TABLE orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku        text NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    customer   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO app_strict;

-- What a subscription handler records (worker delivery checks).
CREATE TABLE deliveries (
    event_id     uuid PRIMARY KEY,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    attempt      integer NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON deliveries TO app_strict;

-- The handler: called by the relay once per event, in the transaction that
-- moves the event to the archive.
CREATE FUNCTION record_delivery(e outbox_events) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO deliveries (event_id, type, payload, attempt)
    VALUES (e.id, e.type, e.payload, e.retry_count + 1)
$$;

RESET ROLE;

-- Subscribe the handler to the delivery checks' events, when this build of the
-- extension has subscriptions (the relay). Every other check consumes through
-- the SQL API, with event types no subscription matches.
DO $$
BEGIN
    IF to_regproc('outbox_subscribe') IS NOT NULL THEN
        EXECUTE $sql$SELECT outbox_subscribe('examples-deliveries', 'example.delivery.*',
                                             'record_delivery', 'app')$sql$;
    END IF;
END
$$;
