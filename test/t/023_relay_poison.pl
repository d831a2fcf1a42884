# A poison event (its handler always fails) is attempted exactly
# 1 + outbox.max_retries times, then its delivery is failed with its last
# error; the events around it complete, and its failed attempts leave no
# effect. Retried with outbox_retry_deliveries(), it is delivered.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('poison', 'outbox.max_retries' => '3', 'outbox.base_backoff' => '20ms',
	'outbox.max_backoff' => '100ms', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
# Count attempts outside the handler's subtransaction: a sequence is not rolled back.
$node->safe_psql('postgres', q{
	CREATE SEQUENCE attempts;
	CREATE SEQUENCE calls;
	CREATE FUNCTION counting(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM nextval('public.calls');
		IF e.payload ? 'poison' THEN
			PERFORM nextval('public.attempts');
		END IF;
		PERFORM public.record_effect(e);
	END $$;
	SELECT outbox_subscribe('all', '*', 'counting');
});

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('job.run', jsonb_build_object('n', i)) FROM generate_series(1, 4) i;
	SELECT outbox_publish('job.run', '{"poison": "bad input"}');
	SELECT outbox_publish('job.run', jsonb_build_object('n', i)) FROM generate_series(5, 8) i;
	COMMIT;
});

my $poison_delivery = q{FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id WHERE e.payload ? 'poison'};
wait_for_relay($node, 'postgres', "SELECT d.status $poison_delivery", 'failed',
	'the poison event\'s delivery ends failed');
is($node->safe_psql('postgres', "SELECT last_value FROM attempts"), '4',
	'it was attempted exactly 1 + max_retries = 4 times');
is($node->safe_psql('postgres', "SELECT d.attempts $poison_delivery"), '4',
	'attempts counts the 4 failed attempts');
like($node->safe_psql('postgres', "SELECT d.last_error $poison_delivery"),
	qr/subscription "all" \(\*\): poison event bad input/, 'last_error names the subscription and the error');
is($node->safe_psql('postgres', "SELECT status FROM outbox_events WHERE payload ? 'poison'"), 'active',
	'the event waits in outbox_events, handed over (active)');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects"), '8', 'its 8 neighbours were handled');
# The batch's handlers run in one subtransaction until one fails: events 1-4
# and the poison (5 calls), rolled back; 1-4 again one by one (4), then 6-9
# together (4); then the poison's 3 retries: 16 calls in all.
is($node->safe_psql('postgres', "SELECT last_value FROM calls"), '16',
	'the events before the poison ran again once each, the ones after it once');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_events_archive WHERE status = 'completed'"), '8',
	'and archived');
is($node->safe_psql('postgres', "SELECT event_id || ' ' || subscription FROM outbox_failed_deliveries()"),
	$node->safe_psql('postgres', "SELECT id || ' all' FROM outbox_events WHERE payload ? 'poison'"),
	'outbox_failed_deliveries() lists it');
is($node->safe_psql('postgres', "SELECT delivered || ' ' || retried || ' ' || failed FROM outbox_worker_stats()"),
	'8 3 1', 'the worker counted 8 delivered, 3 retried, 1 failed');
ok($node->log_contains('failed for good'), 'the final failure is logged');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox_worker_stats()"),
	qr/^event [0-9a-f-]+ \(job\.run\): subscription "all" \(\*\): poison event bad input$/,
	'outbox_worker_stats() shows the last handler error');

# Once the handler is fixed, outbox_retry_deliveries() sends it through again.
$node->safe_psql('postgres', q{
	CREATE OR REPLACE FUNCTION counting(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.effects (event_id, type) VALUES (e.id, e.type);
	END $$;
	SELECT outbox_retry_deliveries('all', array_agg(event_id)) FROM outbox_failed_deliveries();
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects", 9, 'after outbox_retry_deliveries() it is delivered');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'and archived');
is($node->safe_psql('postgres',
	"SELECT status || ' ' || (deliveries->'all'->>'attempts') FROM outbox_events_archive WHERE payload ? 'poison'"),
	'completed 1', 'the archive keeps the subscription\'s outcome (attempts counted from the retry)');

$node->stop;
done_testing();
