# kill -9 of the postmaster alone while the relay drains a backlog with a
# CPU-bound handler: the relay notices between units of work (not only when
# it sleeps), exits at once, and the cluster can be started again right away;
# nothing is lost or doubled.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('pmdeath', 'outbox.poll_interval' => '10min', 'restart_after_crash' => 'on');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE FUNCTION busy(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE x bigint := 0;
	BEGIN
		FOR i IN 1..20000 LOOP x := x + i; END LOOP;  -- CPU, no sleep, no latch wait
		PERFORM public.record_effect(e);
	END $$;
	SELECT outbox_subscribe('busy', '*', 'busy');
});
my $total = 4000;
$node->safe_psql('postgres', qq{
	BEGIN;
	SELECT count(outbox_publish('load', jsonb_build_object('i', i))) FROM generate_series(1, $total) i;
	COMMIT;
});
$node->poll_query_until('postgres', "SELECT count(*) >= 200 FROM effects") or die 'no delivery';
my $relay = relay_pid($node, 'postgres');

$node->kill9;  # the postmaster only: its children are left to notice
my $t0 = time;
usleep(20_000) while kill(0, $relay) && time - $t0 < 30;
my $took = time - $t0;
ok(!kill(0, $relay), 'the relay exits after the postmaster died');
cmp_ok($took, '<', 3, sprintf('within 3 s (%.2f s), not after draining the backlog', $took));

# Every other process of the old server is gone soon as well: the node starts.
my $started = 0;
for my $try (1 .. 60)
{
	last if $started = $node->start(fail_ok => 1);
	sleep 1;
}
ok($started, 'the cluster can be started again');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the backlog drains after the restart');
is( $node->safe_psql('postgres',
		"SELECT count(*) || ' ' || count(DISTINCT a.id) FROM outbox_events_archive a JOIN effects f ON f.event_id = a.id"),
	"$total $total", 'every event was delivered once, with its one effect');

$node->stop;
done_testing();
