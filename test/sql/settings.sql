-- Settings that can be wrong, and what they do.

-- outbox.base_backoff above outbox.max_backoff is taken (PostgreSQL applies
-- settings one at a time, in orders nobody chooses: refusing one for the
-- other's sake would refuse good configurations), and every wait is capped
-- by outbox.max_backoff.
SET outbox.require_transaction = off;
TRUNCATE outbox_events, outbox_events_archive;
SET outbox.max_backoff = '2s';
SET outbox.base_backoff = '1h';
SHOW outbox.base_backoff;
-- A parallel worker takes the pair as it is (a check of one against the other
-- failed it: it applies its leader's settings in name order).
-- (force_parallel_mode is debug_parallel_query from PostgreSQL 16 on)
SELECT CASE WHEN current_setting('server_version_num')::int >= 160000
            THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END AS parallel_mode \gset
SET :parallel_mode = on;
SET parallel_setup_cost = 0;
SELECT count(*) FROM outbox_events;
RESET :parallel_mode;
RESET parallel_setup_cost;
SELECT outbox_publish('settings.capped', '{}') IS NOT NULL AS published;
SELECT lease_token AS token, id AS capped_id FROM outbox_claim(1, types => ARRAY['settings.capped']) \gset
SELECT outbox_fail(:'capped_id', :token, 'down') AS status;
SELECT next_retry_at <= now() + interval '2 seconds' AS capped_by_max_backoff
  FROM outbox_events WHERE id = :'capped_id';
RESET outbox.base_backoff;
RESET outbox.max_backoff;
TRUNCATE outbox_events;

-- outbox.role must be able to name a role: refused when written (ALTER
-- SYSTEM) or reloaded. Whether the role exists, the launcher finds out.
ALTER SYSTEM SET outbox.role = 'public';
ALTER SYSTEM SET outbox.role = 'none';
ALTER SYSTEM SET outbox.role = 'a_name_of_sixty_four_bytes_is_one_byte_longer_than_a_role_may_be';
ALTER SYSTEM SET outbox.databases = 'a,,b';
-- A quoted keyword is a name a role can have.
ALTER SYSTEM SET outbox.role = 'current_user';
ALTER SYSTEM RESET outbox.role;

-- The relay's batch size is its own: for the server (postgresql.conf) or a
-- database (ALTER DATABASE ... SET), not for an ordinary session.
CREATE ROLE regress_outbox_settings;
SET ROLE regress_outbox_settings;
SET outbox.relay_batch_size = 10;
SET outbox.batch_size = 10;
SHOW outbox.batch_size;
RESET ROLE;
DROP ROLE regress_outbox_settings;
SHOW outbox.relay_batch_size;
SHOW outbox.batch_size;
RESET outbox.batch_size;
