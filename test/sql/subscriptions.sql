-- The subscription API: register, list, pause, resume, drop; who may do it,
-- and which handlers are accepted. (Delivery itself is tested by TAP.)
SET outbox.require_transaction = off;
CREATE TABLE sub_effects (event_id uuid PRIMARY KEY);
CREATE FUNCTION on_user(e outbox_events) RETURNS void
LANGUAGE sql AS $$ INSERT INTO sub_effects VALUES (e.id) $$;
CREATE FUNCTION wrong_args(e jsonb) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION two_args(e outbox_events, x int) RETURNS void LANGUAGE sql AS $$ SELECT $$;
CREATE FUNCTION returns_set(e outbox_events) RETURNS SETOF int LANGUAGE sql AS $$ SELECT 1 $$;
CREATE PROCEDURE a_procedure(e outbox_events) LANGUAGE sql AS $$ SELECT $$;

-- Register and list.
SELECT outbox_subscribe('users', 'user.*', 'on_user(outbox_events)'::regprocedure);
SELECT outbox_subscribe('everything', '*', 'on_user');
SELECT name, event_type, handler, owner = current_user::regrole AS mine, paused
  FROM outbox_subscriptions ORDER BY name;

-- Names are unique.
SELECT outbox_subscribe('users', 'user.created', 'on_user');

-- Bad arguments change nothing.
SELECT outbox_subscribe(NULL, 'user.*', 'on_user');
SELECT outbox_subscribe('', 'user.*', 'on_user');
SELECT outbox_subscribe('x', '', 'on_user');
SELECT outbox_subscribe('x', 'user.*', NULL);
SELECT outbox_subscribe('x', 'user.*', 'wrong_args');
SELECT outbox_subscribe('x', 'user.*', 'two_args');
SELECT outbox_subscribe('x', 'user.*', 'returns_set');
SELECT outbox_subscribe('x', 'user.*', 'a_procedure');
SELECT count(*) AS subscriptions FROM outbox_subscriptions;

-- Pause and resume.
SELECT outbox_pause_subscription('users');
SELECT name, paused FROM outbox_subscriptions ORDER BY name;
SELECT outbox_resume_subscription('users');
SELECT name, paused FROM outbox_subscriptions ORDER BY name;
SELECT outbox_pause_subscription('nope');
SELECT outbox_resume_subscription('nope');
-- A NULL name is refused as a NULL argument (22004), as outbox_subscribe does.
SELECT outbox_pause_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_resume_subscription(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_unsubscribe(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT outbox_subscribe(NULL, 'user.*', 'on_user');
\echo :LAST_ERROR_SQLSTATE
SELECT name, paused FROM outbox_subscriptions ORDER BY name;

-- Drop.
SELECT outbox_unsubscribe('everything');
SELECT outbox_unsubscribe('everything');
SELECT name FROM outbox_subscriptions ORDER BY name;

-- Who may subscribe: members of outbox_admin, as themselves (or a role they
-- are a member of), with a handler they may execute.
CREATE ROLE sub_alice;
CREATE ROLE sub_bob;
GRANT outbox_admin TO sub_alice;
SET ROLE sub_bob;
SELECT outbox_subscribe('bob', '*', 'on_user');
SELECT * FROM outbox_subscriptions;
SELECT outbox_pause_subscription('users');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION on_user(outbox_events) FROM PUBLIC;
SET ROLE sub_alice;
SELECT outbox_subscribe('alice', '*', 'on_user');
SELECT outbox_subscribe('alice', '*', 'on_user', 'sub_bob');
RESET ROLE;
GRANT EXECUTE ON FUNCTION on_user(outbox_events) TO sub_alice;
SET ROLE sub_alice;
SELECT outbox_subscribe('alice', 'order.created', 'on_user');
SELECT name, event_type, owner FROM outbox_subscriptions ORDER BY name;
RESET ROLE;
-- A superuser may register on behalf of another role; the handler must be
-- executable by that role.
SELECT outbox_subscribe('for_bob', '*', 'on_user', 'sub_bob');
GRANT EXECUTE ON FUNCTION on_user(outbox_events) TO sub_bob;
SELECT outbox_subscribe('for_bob', '*', 'on_user', 'sub_bob');
SELECT name, owner FROM outbox_subscriptions ORDER BY name;

-- The relay is not running here (regress.conf turns it off): no rows.
SELECT count(*) AS relay_workers FROM outbox_worker_stats();

SELECT outbox_unsubscribe(name) FROM outbox_subscriptions;
REVOKE ALL ON FUNCTION on_user(outbox_events) FROM sub_alice, sub_bob;
DROP ROLE sub_alice;
DROP ROLE sub_bob;
