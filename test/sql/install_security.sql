-- Installing with hostile objects already present, re-installing in the same
-- session, and installing into another schema.
SET outbox.require_transaction = off;
\set SHOW_CONTEXT never

-- Only a superuser may install (the extension is not trusted).
CREATE ROLE inst_user;
GRANT CREATE ON DATABASE contrib_regression TO inst_user;
DROP EXTENSION outbox;
SET ROLE inst_user;
CREATE EXTENSION outbox;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- A full cycle, used after each install below; returns what happened.
CREATE FUNCTION pg_temp.cycle(s text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    id uuid;
    c record;
    claimed boolean;
    extended boolean;
    attempt int;
    status text;
    completed int;
    replayed boolean;
    stats text;
BEGIN
    EXECUTE format('SELECT %I.outbox_publish(''cycle'', ''{"n": 1}'', ''key'')', s) INTO id;
    EXECUTE format('SELECT * FROM %I.outbox_claim(1, interval ''1.5 seconds'', ''cycle'')', s) INTO c;
    claimed := c.id = id;
    EXECUTE format('SELECT %I.outbox_heartbeat(ARRAY[$1], $2) > pg_catalog.now()', s) INTO extended
        USING c.id, c.lease_token;
    EXECUTE format('UPDATE %I.outbox_events SET keep_alive = pg_catalog.now() - pg_catalog.make_interval(secs => expire_in_seconds + 1)', s);  -- lease ends
    EXECUTE format('SELECT * FROM %I.outbox_claim(1, interval ''1 minute'', ''cycle'')', s) INTO c;
    attempt := c.attempt;
    EXECUTE format('SELECT %I.outbox_fail($1, $2, ''boom'', retryable => false)::text', s) INTO status
        USING c.id, c.lease_token;
    EXECUTE format('SELECT %I.outbox_retry(ARRAY[$1])', s) USING c.id;
    EXECUTE format('SELECT * FROM %I.outbox_claim(1, interval ''1 minute'', ''cycle'')', s) INTO c;
    EXECUTE format('SELECT %I.outbox_complete(ARRAY[$1], $2)', s) INTO completed USING c.id, c.lease_token;
    EXECUTE format('SELECT %I.outbox_replay($1) IS NOT NULL', s) INTO replayed USING c.id;
    EXECUTE format('SELECT count(*) FROM %I.outbox_archive_maintain()', s);
    EXECUTE format('SELECT format(''created %%s, failed %%s, archived %%s'', created, failed, archived) FROM %I.outbox_stats()', s)
        INTO stats;
    RETURN format('claimed %s, extended %s, reclaimed as attempt %s, then %s, retried, completed %s, replayed %s; %s',
                  claimed, extended, attempt, status, completed, replayed, stats);
END
$$;

-------------------------------------------------------------------------------
-- Look-alike functions and operators in public that would win over the
-- built-in ones if public were searched first (exact argument types where
-- pg_catalog needs a cast). Each records that it was called.
-------------------------------------------------------------------------------
CREATE TABLE public.pwned (what text);
CREATE FUNCTION public.nextval(text) RETURNS bigint LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('nextval'); RETURN 1; END $$;
CREATE FUNCTION public.make_interval(secs integer) RETURNS interval LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('make_interval'); RETURN interval '1 year'; END $$;
CREATE FUNCTION public.format(text, integer, text, bigint) RETURNS text LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('format'); RETURN 'pwned'; END $$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('now'); RETURN '2000-01-01'; END $$;
CREATE FUNCTION public.evil_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('='); RETURN true; END $$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_eq);
CREATE FUNCTION public.evil_eq_name(name, text) RETURNS boolean LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO public.pwned VALUES ('name='); RETURN true; END $$;
CREATE OPERATOR public.= (LEFTARG = name, RIGHTARG = text, FUNCTION = public.evil_eq_name);
-- The most exposed setting: public before pg_catalog.
SET search_path = public, pg_catalog;
CREATE EXTENSION outbox;
SELECT pg_temp.cycle('public');
SELECT what, count(*) AS hostile_calls FROM public.pwned GROUP BY what;
-- The traps work: unqualified calls with this search_path do take them.
CREATE SEQUENCE inst_seq;
SELECT make_interval(secs => 5) AS made, nextval('inst_seq') AS next, 'a'::text = 'b'::text AS equal;
SELECT what FROM public.pwned ORDER BY what;
DROP SEQUENCE inst_seq;
RESET search_path;
DROP OPERATOR public.= (text, text);
DROP OPERATOR public.= (name, text);
DROP FUNCTION public.nextval(text), public.make_interval(integer), public.format(text, integer, text, bigint),
              public.now(), public.evil_eq(text, text), public.evil_eq_name(name, text);
DROP TABLE public.pwned;

-------------------------------------------------------------------------------
-- Re-installing in the same session keeps working (the session had cached
-- the old extension's objects).
-------------------------------------------------------------------------------
DROP EXTENSION outbox;
CREATE EXTENSION outbox;
SELECT pg_temp.cycle('public');

-------------------------------------------------------------------------------
-- A table of the same name already there: refused, nothing half-made.
-------------------------------------------------------------------------------
DROP EXTENSION outbox;
CREATE TABLE public.outbox_events (id uuid, note text);
CREATE EXTENSION outbox;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extension_rows FROM pg_extension WHERE extname = 'outbox';
SELECT to_regtype('outbox_status') IS NULL AS no_type_left;
DROP TABLE public.outbox_events;

-------------------------------------------------------------------------------
-- A role of the same name that the extension did not create: refused
-- (whoever prepared it would be handed the extension's privileges).
-------------------------------------------------------------------------------
-- (DROP EXTENSION leaves the roles' USAGE on the schema: it is not a member
-- object of the extension. From PostgreSQL 17 on its record as an initial
-- privilege, in pg_init_privs, holds the role too: DROP OWNED takes both.)
DROP OWNED BY outbox_admin;
DROP ROLE outbox_admin;
CREATE ROLE outbox_admin;
CREATE EXTENSION outbox;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS extension_rows FROM pg_extension WHERE extname = 'outbox';
DROP ROLE outbox_admin;
-- Roles it created itself are reused (they outlive DROP EXTENSION, being
-- cluster-wide) and marked as its own.
CREATE EXTENSION outbox;
SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') AS comment
  FROM pg_roles WHERE rolname LIKE 'outbox\_%' ORDER BY rolname;
SELECT pg_has_role('outbox_admin', 'outbox_publisher', 'MEMBER') AND
       pg_has_role('outbox_admin', 'outbox_consumer', 'MEMBER') AS admin_is_both;

-------------------------------------------------------------------------------
-- A schema owned by an untrusted role: refused.
-------------------------------------------------------------------------------
DROP EXTENSION outbox;
CREATE SCHEMA inst_theirs AUTHORIZATION inst_user;
CREATE EXTENSION outbox SCHEMA inst_theirs;
\echo :LAST_ERROR_SQLSTATE
DROP SCHEMA inst_theirs;

-------------------------------------------------------------------------------
-- Another schema: works, also when that schema is not on the search path,
-- and ignores a decoy table of the same name in public.
-------------------------------------------------------------------------------
CREATE SCHEMA outbox;
CREATE EXTENSION outbox SCHEMA outbox;
CREATE TABLE public.outbox_events (id uuid, note text);
SET search_path = public;
SELECT pg_temp.cycle('outbox');
SELECT count(*) AS decoy_rows FROM public.outbox_events;
SELECT type, status FROM outbox.outbox_events_archive ORDER BY seq;
SELECT has_schema_privilege('outbox_publisher', 'outbox', 'USAGE') AS publisher_usage;
RESET search_path;
DROP TABLE public.outbox_events;

-- Back to public, still in the same session.
DROP EXTENSION outbox;
DROP SCHEMA outbox;
CREATE EXTENSION outbox;
SELECT pg_temp.cycle('public');
TRUNCATE outbox_events, outbox_events_archive;
REVOKE CREATE ON DATABASE contrib_regression FROM inst_user;
DROP ROLE inst_user;
