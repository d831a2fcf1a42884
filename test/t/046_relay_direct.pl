# Events whose subscriptions are all active SQL ones are delivered by the
# batch that claims them, without delivery rows (outbox_deliveries is never
# written to while every handler succeeds), and archived with each
# subscription's outcome. When one handler fails, that event is handed over
# after all: its other subscription's effect stays (exactly once), the
# failure is retried on the delivery row, and later events of the same
# ordering key wait for it at that subscription, in publish order, while the
# other subscription is not held back. An event that also goes to a paused
# subscription is handed over and waits there.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('direct', 'outbox.max_retries' => '1000', 'outbox.base_backoff' => '50ms',
	'outbox.max_backoff' => '200ms');
setup_relay_db($node, 'postgres');
sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
	CREATE TABLE seen (sub text, event_id uuid, n int, at timestamptz DEFAULT clock_timestamp(),
	                   PRIMARY KEY (sub, event_id));
	CREATE TABLE failing (n int PRIMARY KEY);
	CREATE FUNCTION handler_a(e outbox_events) RETURNS void LANGUAGE sql AS $$
		INSERT INTO public.seen (sub, event_id, n) VALUES ('a', e.id, (e.payload->>'n')::int) $$;
	CREATE FUNCTION handler_b(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF EXISTS (SELECT FROM public.failing f WHERE f.n = (e.payload->>'n')::int) THEN
			RAISE EXCEPTION 'b refuses %', e.payload->>'n';
		END IF;
		INSERT INTO public.seen (sub, event_id, n) VALUES ('b', e.id, (e.payload->>'n')::int);
	END $$;
	SELECT outbox_subscribe('a', 'd.*', 'handler_a');
	SELECT outbox_subscribe('b', 'd.*', 'handler_b');
});

# ---- Every handler succeeds: no delivery row is ever written ----
sql("BEGIN; SELECT count(outbox_publish('d.ok', jsonb_build_object('n', i), ordering_key => 'k' || (i % 7)))
     FROM generate_series(1, 2000) i; COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'd.ok'", 2000,
	'2,000 events to two SQL subscriptions archived');
is(sql("SELECT count(*) || ' ' || count(DISTINCT (sub, event_id)) FROM seen"), '4000 4000',
	'each subscription\'s handler ran once per event');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'd.ok' AND status = 'completed'
          AND deliveries->'a'->>'status' = 'completed' AND deliveries->'b'->>'status' = 'completed'
          AND (deliveries->'a'->>'attempts')::int = 1 AND (deliveries->'b'->>'attempts')::int = 1
          AND deliveries->'a' ? 'completed_on' AND (SELECT count(*) FROM jsonb_object_keys(deliveries)) = 2"),
	'2000', 'the archive keeps both outcomes of every event (completed, one attempt)');
is(sql("SELECT count(*) FROM (SELECT sub, n, lag(n) OVER (PARTITION BY sub, n % 7 ORDER BY at) AS before
          FROM seen) x WHERE before > n"), '0', 'same-key events in publish order at each subscription');
# The relay flushes its table statistics at most once a second.
ok($node->poll_query_until('postgres',
	"SELECT n_tup_del >= 2000 FROM pg_stat_user_tables WHERE relname = 'outbox_events'"),
	'the relay reported its deletes from outbox_events');
is(sql("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'outbox_deliveries'"), '0',
	'no delivery row was written for them');

# ---- One handler fails: handed over, the other's effect kept ----
sql("TRUNCATE seen; INSERT INTO failing VALUES (2)");
sql("BEGIN; SELECT count(outbox_publish('d.key', jsonb_build_object('n', i), ordering_key => 'same'))
     FROM generate_series(1, 5) i; COMMIT;");
sql("SELECT outbox_publish('d.free', '{\"n\": 100}')");
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_deliveries WHERE subscription = 'b' AND attempts >= 2 AND status = 'created'", 1,
	'b\'s delivery of event 2 is retried on its row');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM seen WHERE sub = 'a' AND n IN (1, 2, 3, 4, 5, 100)", 6,
	'a got all the events meanwhile (it is not held back by b)');
is(sql("SELECT string_agg(n::text, ',' ORDER BY at) FROM seen WHERE sub = 'b'"), '1,100',
	'b got event 1 and the unkeyed event, and nothing after event 2 of its key');
is(sql("SELECT count(*) FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
         WHERE d.subscription = 'b' AND d.status = 'created' AND (e.payload->>'n')::int BETWEEN 3 AND 5"), '3',
	'b\'s deliveries of events 3 to 5 wait behind event 2');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'd.key'"), '1', 'only event 1 is archived');
sql("DELETE FROM failing");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type IN ('d.key', 'd.free')", 6,
	'once b accepts event 2, every event is archived');
is(sql("SELECT string_agg(n::text, ',' ORDER BY at) FROM seen WHERE sub = 'b' AND n < 100"), '1,2,3,4,5',
	'b handled the key\'s events in publish order');
is(sql("SELECT count(*) || ' ' || count(DISTINCT (sub, event_id)) FROM seen"), '12 12',
	'every effect exists once (a\'s effect of event 2 was not made twice)');
is(sql("SELECT (deliveries->'a'->>'attempts') || ' ' || ((deliveries->'b'->>'attempts')::int >= 2) || ' ' || status
          FROM outbox_events_archive WHERE type = 'd.key' AND payload->>'n' = '2'"), '1 true completed',
	'event 2\'s archive row: a made at once, b at its second attempt (or later)')
  or diag(sql("SELECT deliveries FROM outbox_events_archive WHERE type = 'd.key' AND payload->>'n' = '2'"));
is(sql("SELECT count(*) FROM outbox_deliveries"), '0', 'no delivery row left');

# ---- A paused subscription: the event is handed over and waits there ----
sql("TRUNCATE seen; SELECT outbox_pause_subscription('b')");
sql("SELECT outbox_publish('d.paused', '{\"n\": 7}')");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM seen WHERE sub = 'a' AND n = 7", 1,
	'a handled the event while b is paused');
is(sql("SELECT status FROM outbox_deliveries WHERE subscription = 'b'"), 'created',
	'b\'s delivery waits on its row');
sql("SELECT outbox_resume_subscription('b')");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'd.paused'", 1,
	'resumed, b handles it and the event is archived');
is(sql("SELECT count(*) || ' ' || count(DISTINCT (sub, event_id)) FROM seen"), '2 2', 'each effect once');

# ---- One claim with both: a keyed event handed over and events taken directly ----
# Handing a keyed event over makes the batch claim again (the next of its key
# may be claimable now); that claim must not take the direct ones again.
sql("TRUNCATE seen; SELECT outbox_subscribe('p', 'mix.*', 'handler_a'); SELECT outbox_pause_subscription('p')");
sql(q{BEGIN;
	SELECT outbox_publish('mix.k', '{"n": 1}', ordering_key => 'mk');
	SELECT count(outbox_publish('d.mixed', jsonb_build_object('n', i))) FROM generate_series(1, 10) i;
	COMMIT;});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'd.mixed'", 10,
	'the ten direct events of the batch are archived');
is(sql("SELECT count(*) || ' ' || count(DISTINCT (sub, event_id)) FROM seen"), '20 20',
	'each handler ran once for each of them');
is(sql("SELECT string_agg(d.status || ' ' || coalesce(e.type, 'archived'), ',')
           FROM outbox_deliveries d LEFT JOIN outbox_events e ON e.id = d.event_id"),
	'created mix.k', 'the keyed event waits for the paused subscription; no other delivery row exists');
sql("SELECT outbox_unsubscribe('p')");
unlike(slurp_file($node->logfile), qr/ERROR:[^\n]*(outbox relay|delivered in the batch)/,
	'no relay batch failed');

$node->stop;
done_testing();
