# The relay's worker is stopped (SIGTERM) or killed (kill -9) mid-batch: it is
# restarted, no event is lost, and no handler effect is doubled.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('killworker', 'outbox.poll_interval' => '1s', 'restart_after_crash' => 'on');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE FUNCTION slow_effect(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM pg_sleep(0.002);
		PERFORM public.record_effect(e);
	END $$;
	SELECT outbox_subscribe('all', '*', 'slow_effect');
});
my $total = 1500;

sub check_exactly_once
{
	my ($what) = @_;
	wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, "$what: the outbox drains");
	is( $node->safe_psql('postgres',
			"SELECT count(*) || ' ' || count(DISTINCT id) FROM outbox_events_archive WHERE status = 'completed'"),
		"$total $total", "$what: every event archived once");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM outbox_events_archive a JOIN effects f ON f.event_id = a.id"),
		$total, "$what: every event has its one effect");
	return;
}

sub publish_load
{
	$node->safe_psql('postgres', qq{
		BEGIN;
		SELECT count(outbox_publish('load.event', jsonb_build_object('i', i))) FROM generate_series(1, $total) i;
		COMMIT;
	});
	return;
}

sub wait_mid_batch
{
	# Until some, not all, events are handled.
	for my $i (1 .. 600)
	{
		my $n = $node->safe_psql('postgres', "SELECT count(*) FROM effects");
		return $n if $n >= 100;
		usleep(20_000);
	}
	die "the relay did not start delivering";
}

# SIGTERM: the worker stops promptly and the launcher starts a new one.
my $pid = relay_pid($node, 'postgres');
publish_load();
my $seen = wait_mid_batch();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND pid <> $pid"),
	'after SIGTERM a new worker is started');
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM effects"), '<', $total,
	"it was stopped mid-load ($seen handled when it was)");
check_exactly_once('SIGTERM');

# kill -9: the postmaster resets the cluster (crash recovery) and the relay
# comes back with it.
$node->safe_psql('postgres', "TRUNCATE effects; TRUNCATE outbox_events_archive");
$pid = relay_pid($node, 'postgres');
publish_load();
$seen = wait_mid_batch();
kill 'KILL', $pid;
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND pid <> $pid"),
	'after kill -9 a new worker runs');
ok($node->log_contains("was terminated by signal 9"), 'the kill was seen by the postmaster');
check_exactly_once('kill -9');

$node->stop;
done_testing();
