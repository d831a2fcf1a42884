# kill -9 of the postmaster (and of all its processes, as a power loss would)
# while a 10,000-event load is being published and delivered, five rounds:
# every committed event ends in the archive exactly once and its handler's
# effect exists exactly once; nothing that did not commit is delivered.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('crash', 'outbox.poll_interval' => '1s', 'restart_after_crash' => 'on',
	'outbox.relay_batch_size' => '100');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE TABLE published (id uuid PRIMARY KEY);
	SELECT outbox_subscribe('all', 'load.*', 'record_effect');
});

my $load = q{
	DO $$
	BEGIN
		FOR t IN 1..1000 LOOP
			INSERT INTO public.published
			SELECT outbox_publish('load.event', jsonb_build_object('t', t, 'j', j)) FROM generate_series(1, 10) j;
			COMMIT;
			-- At least 1 ms a transaction: the load lasts past any kill point
			-- (at most 7,000 events in) even on a fast, idle machine.
			PERFORM pg_sleep(0.001);
		END LOOP;
	END $$;
};

for my $round (1 .. 5)
{
	my $before = $node->safe_psql('postgres', "SELECT count(*) FROM published");
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'),
		  '-c', 'SET outbox.require_transaction = off', '-c', $load ],
		'>', \$out, '2>', \$err);
	# Kill somewhere in the middle of the load.
	my $at = $before + 1000 + int(rand(6000));
	my $published = $before;
	for my $i (1 .. 600)
	{
		$published = $node->safe_psql('postgres', "SELECT count(*) FROM published");
		$h->pump_nb;
		last if $published >= $at || !$h->pumpable;
		usleep(10_000);
	}
	kill_cluster_9($node);
	$h->finish;
	my $mid = $published - $before < 10_000;
	ok($mid, "round $round: killed mid-load (at least " . ($published - $before) . " of 10000 committed)");

	$node->start;
	wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0,
		"round $round: after restart the outbox drains");
	my $committed = $node->safe_psql('postgres', "SELECT count(*) FROM published");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM published p WHERE NOT EXISTS (SELECT FROM outbox_events_archive a WHERE a.id = p.id)"),
		'0', "round $round: each of the $committed committed events is archived");
	is( $node->safe_psql('postgres',
			"SELECT count(*) || ' ' || count(DISTINCT id) FROM outbox_events_archive WHERE status = 'completed'"),
		"$committed $committed", "round $round: once, and nothing else is");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM published p JOIN effects f ON f.event_id = p.id"),
		$committed, "round $round: each has its handler's effect");
	is($node->safe_psql('postgres', "SELECT count(*) FROM effects"), $committed,
		"round $round: and no other effect exists");
}

$node->stop;
done_testing();
