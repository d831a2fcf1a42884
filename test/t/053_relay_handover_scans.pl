# A relay that hands a backlog over (here to a paused subscription: the same
# path as to a webhook or a Kafka target) reads outbox_events through its
# indexes, not by scanning the table once per batch. Before: after every
# batch that only handed events over, the look at what is left ("events
# waiting") ran, and on statistics taken before the hand-over it was a
# sequential scan of outbox_events, by then mostly events handed over: 400
# scans of a growing table for these 20,000 events, 76 % of the relay's time
# (the hand-over ran at 6,000-9,400 events/s instead of 57,000-71,000). The
# backlog age check (outbox.backlog_warning_age) was a scan of the table every
# time too: it named no dispatched_at, which the claim index's predicate needs.
# Counted with pg_stat_user_tables.seq_scan (the relay flushes its statistics;
# autovacuum is off so that nothing else reads the table).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $events = 20000;
my $node = relay_node('handover_scans',
	'outbox.enabled' => 'off',
	'outbox.backlog_warning_age' => '2s',
	'autovacuum' => 'off');
setup_relay_db($node, 'postgres');
sub sql { return $node->safe_psql('postgres', "SET outbox.require_transaction = off; $_[0]"); }

sub seq_scans
{
	# A new session each time, so not a snapshot of the statistics taken
	# before; the relay reports its own at most a second apart.
	return sql("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox_events'");
}

sql(q{
	SELECT outbox_subscribe('later', 'h.*', 'record_effect');
	SELECT outbox_pause_subscription('later');
});
# The backlog, and statistics that say all of it waits to be handed over (as
# autovacuum's analyze of a backlog published while the relay was behind).
sql("SELECT count(outbox_publish('h.event', jsonb_build_object('i', i))) FROM generate_series(1, $events) i");
# Three events no subscription takes (there for consumers): the relay is not
# quiet, and checks the backlog's age every second.
sql("SELECT count(outbox_publish('other.event', jsonb_build_object('i', i))) FROM generate_series(1, 3) i");
sql('ANALYZE outbox_events');
my $before = seq_scans();

$node->append_conf('postgresql.conf', "outbox.enabled = on\n");
$node->reload;
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_deliveries", $events,
	"the relay handed the $events events over to the paused subscription");
sleep 2;    # the relay's statistics flushed
my $scans = seq_scans() - $before;
# A batch that runs no handler hands up to 1,000 events over (one
# transaction each: the deliveries it made share their xmin), not
# outbox.relay_batch_size (50): 400 transactions for these.
my $batches = sql("SELECT count(DISTINCT xmin::text) FROM outbox_deliveries");
ok($batches >= $events / 1000 && $batches <= $events / 1000 + 5,
	"the $events events were handed over in $batches transactions");
# Counted too, while the statistics still say the events wait (autovacuum's
# analyze would follow such a hand-over): the upkeep's look for expired
# leases, planned as a scan once a second; and the relay's first round's sweep
# of settled events left behind, a statement that reads the handed-over
# events by nature (once a minute).
ok($scans <= 20,
	"outbox_events was scanned $scans times while $events events were handed over "
	  . "(400 and more before, in batches of 50)");

# Statistics as they are now; five seconds with the backlog's age checked
# every second (and the upkeep's look for leases): the table is not scanned.
sql('ANALYZE outbox_events');
$before = seq_scans();
sleep 6;
$scans = seq_scans() - $before;
ok($scans <= 1,
	"over 6 s of backlog checks and upkeep beside $events events handed over, outbox_events was scanned $scans "
	  . "times (at most the sweep's once a minute; once per check before)");
is(sql("SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL"), '3',
	'only the events no subscription takes are left undispatched');
like(sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay'"), qr/^1$/,
	'the relay runs');

$node->stop;
done_testing();
