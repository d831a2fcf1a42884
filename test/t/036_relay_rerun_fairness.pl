# Only an event's own first run of a batch can charge it an attempt. When a
# later event of the batch fails, the events before it run again (their
# effects were rolled back with the failing one's); if such a re-run fails (a
# handler that calls out, or is not deterministic), the event is left for the
# next batch, due at once, with no attempt counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('fairness', 'outbox.max_retries' => '0', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE SEQUENCE flaky_calls;
	-- Succeeds, except on its second call.
	CREATE FUNCTION flaky(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF e.payload ? 'flaky' AND nextval('public.flaky_calls') = 2 THEN
			RAISE EXCEPTION 'the remote end said no, this time';
		END IF;
		PERFORM public.record_effect(e);
	END $$;
	SELECT outbox_subscribe('flaky', '*', 'flaky');
});
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('t', '{"flaky": true}');
	SELECT outbox_publish('t', '{"poison": "always"}');
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE payload ? 'flaky'", 1,
	'the flaky event is delivered');
is($node->safe_psql('postgres', 'SELECT last_value FROM flaky_calls'), '3',
	'it ran in the group, again after the poison failed (and failed), then in the next batch');
is($node->safe_psql('postgres', "SELECT retry_count FROM outbox_events_archive WHERE payload ? 'flaky'"), '0',
	'the failure of its re-run was not charged');
is($node->safe_psql('postgres', "SELECT status || ' ' || attempts FROM deliveries WHERE payload ? 'poison'"),
	'failed 1', 'the poison event was charged its own failure');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects"), '1', 'the flaky event took effect once');

$node->stop;
done_testing();
