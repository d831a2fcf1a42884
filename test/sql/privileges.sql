-- Privileges: nothing is open to PUBLIC; outbox_publisher may publish,
-- outbox_consumer may claim and settle events (and read the tables),
-- outbox_admin may do both and run the operations. Nobody but the owner
-- writes the tables directly.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never
TRUNCATE outbox_events, outbox_events_archive;
CREATE ROLE priv_plain;
CREATE ROLE priv_app IN ROLE outbox_publisher;

-- The extension is not trusted: only a superuser can install it.
SELECT version, trusted, superuser FROM pg_available_extension_versions WHERE name = 'outbox' ORDER BY version;

-- Who may execute what (PUBLIC stands for every role).
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('outbox_publisher', p.oid, 'EXECUTE') AS publisher,
       has_function_privilege('outbox_consumer', p.oid, 'EXECUTE') AS consumer,
       has_function_privilege('outbox_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('priv_plain', p.oid, 'EXECUTE') AS plain
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'outbox') AND d.deptype = 'e'
 ORDER BY p.proname, p.oid::regprocedure::text;
-- pg_monitor may read the statistics.
SELECT has_function_privilege('pg_monitor', 'outbox_stats()', 'EXECUTE') AS monitor_stats;

-- Which role may do what to the tables and the token sequence.
SELECT c.relname,
       r.rolname,
       concat_ws(',', CASE WHEN has_table_privilege(r.rolname, c.oid, 'SELECT') THEN 'select' END,
                      CASE WHEN has_table_privilege(r.rolname, c.oid, 'INSERT') THEN 'insert' END,
                      CASE WHEN has_table_privilege(r.rolname, c.oid, 'UPDATE') THEN 'update' END,
                      CASE WHEN has_table_privilege(r.rolname, c.oid, 'DELETE') THEN 'delete' END,
                      CASE WHEN has_table_privilege(r.rolname, c.oid, 'TRUNCATE') THEN 'truncate' END) AS may
  FROM pg_class c
 CROSS JOIN (VALUES ('public'), ('outbox_publisher'), ('outbox_consumer'), ('outbox_admin'), ('priv_plain')) r(rolname)
 WHERE c.relname IN ('outbox_events', 'outbox_events_archive', 'outbox_events_archive_default')
   AND c.relnamespace = 'public'::regnamespace
 ORDER BY c.relname, r.rolname;
SELECT r AS rolname, has_sequence_privilege(r, 'outbox_lease_token_seq', 'USAGE') AS seq_usage
  FROM unnest(ARRAY['public', 'outbox_publisher', 'outbox_consumer', 'outbox_admin']) r;

-- SECURITY DEFINER functions: the SQL ones pin search_path with SET; the C
-- ones pin it themselves (pg_catalog only) and name every object by schema.
SELECT p.proname, l.lanname, p.prosecdef, p.proconfig
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.proname LIKE '%outbox%' AND p.pronamespace = 'public'::regnamespace
 ORDER BY p.proname, p.oid::regprocedure::text;

-------------------------------------------------------------------------------
-- The same, by SET ROLE.
-------------------------------------------------------------------------------
-- A role with no outbox role: nothing.
SET ROLE priv_plain;
SELECT outbox_publish('x', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_stats();
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM outbox_events;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM outbox_events_archive;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A publisher (an application role granted outbox_publisher): publishes, and
-- can neither read nor write the tables nor claim.
SET ROLE priv_app;
BEGIN;
SELECT outbox_publish('priv.event', '{"n": 1}', id => '00000000-0000-4000-8000-000000000001') AS published;
SELECT outbox_publish_batch('[{"type": "priv.event", "payload": {"n": 2}, "id": "00000000-0000-4000-8000-000000000002"}]') AS published;
COMMIT;
SELECT count(*) FROM outbox_events;
\echo :LAST_ERROR_SQLSTATE
INSERT INTO outbox_events (id, type, payload) VALUES (gen_random_uuid(), 'forged', '{}');
\echo :LAST_ERROR_SQLSTATE
UPDATE outbox_events SET status = 'failed';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM outbox_events;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE outbox_events;
\echo :LAST_ERROR_SQLSTATE
SELECT nextval('outbox_lease_token_seq');
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_claim(1);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_retry(ARRAY['00000000-0000-4000-8000-000000000001']::uuid[]);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A consumer: claims, heartbeats, fails, completes; reads the tables; cannot
-- write them, publish, or run operations.
SET ROLE outbox_consumer;
SELECT id, lease_token FROM outbox_claim(1, interval '1 minute', 'priv-consumer') \gset
SELECT outbox_heartbeat(ARRAY[:'id']::uuid[], :lease_token) IS NOT NULL AS heartbeat;
SELECT outbox_release(ARRAY[:'id']::uuid[], :lease_token) AS released;
CREATE TEMP TABLE priv_c AS SELECT * FROM outbox_claim(2, interval '1 minute', 'priv-consumer');
SELECT payload, attempt FROM priv_c ORDER BY payload;
SELECT outbox_fail(id, lease_token, 'x', retry_in => interval '0') AS failed FROM priv_c WHERE payload = '{"n": 2}';
SELECT outbox_complete(ARRAY(SELECT id FROM priv_c WHERE payload = '{"n": 1}'), (SELECT min(lease_token) FROM priv_c)) AS completed;
SELECT payload, attempt FROM outbox_claim(1, interval '1 minute', 'priv-consumer') \gset
SELECT :'payload' AS payload, :attempt AS attempt;
SELECT outbox_complete(ARRAY(SELECT id FROM outbox_events WHERE status = 'active'),
                       (SELECT lease_token FROM outbox_events WHERE status = 'active')) AS completed;
SELECT type, payload, status, lease_owner FROM outbox_events_archive ORDER BY seq;
INSERT INTO outbox_events (id, type, payload) VALUES (gen_random_uuid(), 'forged', '{}');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM outbox_events_archive;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT outbox_publish('x', '{}');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT outbox_failed_events();
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_stats();
\echo :LAST_ERROR_SQLSTATE
DROP TABLE priv_c;
RESET ROLE;

-- An admin: the operations, and (as a member of both) publish and consume.
SET ROLE outbox_admin;
BEGIN;
SELECT outbox_publish('admin.event', '{}', id => '00000000-0000-4000-8000-000000000003') AS published;
COMMIT;
SELECT id, lease_token FROM outbox_claim(1, interval '1 minute', 'admin') \gset
SELECT outbox_fail(:'id', :lease_token, 'x', retryable => false) AS failed;
SELECT type, status FROM outbox_failed_events();
SELECT outbox_retry(ARRAY[:'id']::uuid[]) AS retried;
SELECT id, lease_token FROM outbox_claim(1, interval '1 minute', 'admin') \gset
SELECT outbox_fail(:'id', :lease_token, 'x', retryable => false) AS failed;
SELECT outbox_discard(ARRAY[:'id']::uuid[]) AS discarded;
SELECT outbox_replay(:'id') IS NOT NULL AS replayed;
SELECT created, active, failed, archived FROM outbox_stats();
SELECT count(*) >= 0 AS maintained FROM outbox_archive_maintain();
DELETE FROM outbox_events;
\echo :LAST_ERROR_SQLSTATE
SELECT _outbox_check_failed(ARRAY[:'id']::uuid[], 'x');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- Membership is what counts: revoking it takes the rights away.
REVOKE outbox_publisher FROM priv_app;
SET ROLE priv_app;
SELECT outbox_publish('x', '{}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

DROP ROLE priv_plain, priv_app;
