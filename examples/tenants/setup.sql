-- One tenant's database (run by examples/run.sh as superuser, directly on the
-- server, in tenant_us and in tenant_eu; examples/setup.sql ran before, so the
-- extension's roles exist already: they are the cluster's, not a database's).

CREATE EXTENSION outbox;

-- The application's role in every tenant database; pg_monitor lets the tests
-- read outbox_worker_stats() (which relay delivered what).
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenant_app') AS create_role \gset
\if :create_role
CREATE ROLE tenant_app LOGIN PASSWORD 'app-secret' IN ROLE outbox_publisher, outbox_consumer, pg_monitor;
\endif
GRANT CREATE ON SCHEMA public TO tenant_app;

-- The guard refuses a publish outside a transaction block in this database:
-- a publish sent through another tenant's pool from inside this tenant's
-- transaction is refused there, not stored. Per database, so no session SET
-- (PgBouncer in transaction pooling); the server applies it to new sessions.
SELECT format('ALTER DATABASE %I SET outbox.require_transaction = error', current_database()) \gexec

SET ROLE tenant_app;

-- The business table of the tenant-aware app (seed 004 is Cal.com: bookings).
CREATE TABLE bookings (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      text NOT NULL,
    attendee   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- What this tenant's relay delivered: the handler writes it in this database,
-- with the database it ran in.
CREATE TABLE deliveries (
    event_id     uuid PRIMARY KEY,
    type         text NOT NULL,
    payload      jsonb NOT NULL,
    database     name NOT NULL,
    attempt      integer NOT NULL,
    delivered_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION record_delivery(e outbox_events) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.deliveries (event_id, type, payload, database, attempt)
    VALUES (e.id, e.type, e.payload, current_database(), e.retry_count + 1)
$$;

RESET ROLE;

SELECT outbox_subscribe('tenant-deliveries', 'booking.*', 'record_delivery', 'tenant_app');
