# Events whose deliveries are all settled but which are still in
# outbox_events are moved to the archive by the relay's sweep, all of them
# at once, not a thousand a minute. They are left behind by design when the
# server stops: the sink worker hands the events it settled to the relay to
# archive (a queue in shared memory, gone with a crash or a restart), and
# transactions that settle an event's deliveries without seeing each other
# (an operator's, in REPEATABLE READ) leave it too. Before, the sweep took
# 1,000 of them a minute: 2,500 such events took two minutes to go.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $events = 2500;
my $node = relay_node('sweep_settled');
setup_relay_db($node, 'postgres');
sub sql { return $node->safe_psql('postgres', "SET outbox.require_transaction = off; $_[0]"); }

# Handed over to a paused subscription (the path of every external sink),
# then settled by hand with the relay off, as a sink worker's settlement
# whose events the relay had not archived yet when the server went down.
sql(q{
	SELECT outbox_subscribe('later', 'h.*', 'record_effect');
	SELECT outbox_pause_subscription('later');
});
sql("SELECT count(outbox_publish('h.event', jsonb_build_object('i', i))) FROM generate_series(1, $events) i");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_deliveries", $events,
	"the relay handed the $events events over");
$node->append_conf('postgresql.conf', "outbox.enabled = off\n");
$node->reload;
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'outbox relay'")
  or die 'the relay did not stop';
sql(q{UPDATE outbox_deliveries SET status = 'completed', attempts = 1, last_status = 0,
	  completed_on = statement_timestamp()});
is(sql("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NOT NULL"), $events,
	"$events events settled and not archived");

my $t0 = time;
$node->append_conf('postgresql.conf', "outbox.enabled = on\n");
$node->reload;
# Well under the sweep's minute: its first round found a full sweep's worth
# and swept again at once, until none was left.
ok($node->poll_query_until('postgres', "SELECT count(*) FROM outbox_events", '0'),
	'the relay archived the settled events');
my $took = time - $t0;
cmp_ok($took, '<', 30, sprintf('all %d swept in %.1f s (one sweep a minute took 1,000)', $events, $took));
is(sql(q{SELECT count(*) FILTER (WHERE status = 'completed' AND deliveries->'later'->>'status' = 'completed')
	FROM outbox_events_archive}), $events, 'each in the archive, completed, with its delivery');
is(sql("SELECT count(*) FROM outbox_deliveries"), '0', 'their deliveries went with them');
is(sql("SELECT count(*) FROM effects"), '0', 'no handler ran: they were delivered already');

$node->stop;
done_testing();
