# Crashes mid-delivery: five rounds of kill -9 of the sink worker, then five
# of kill -9 of the postmaster (the node started again), each while requests
# are in flight to a receiver that answers after 200 ms. No event is lost:
# each is received at least once (duplicates are allowed and counted), the
# outbox drains and the archive has each event, completed.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $node = webhook_node('whcrash',
	'restart_after_crash' => 'on',
	'outbox.max_retries' => '1000',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A short timeout, so that leases of the killed worker's requests run out soon.
my $secret = sql("SELECT outbox_create_endpoint('slow', '" . receiver_url($r, '/slow') . "', timeout => '2 s')");
receiver_config($r, '/slow', { secrets => [$secret], delay_ms => 200 });
sql("SELECT outbox_subscribe_webhook('to_slow', 'crash.*', 'slow')");

my $per_round = 200;
my $total = 0;

# Publish a round's events and wait until the receiver is busy with them
# (at least 16 more arrived, fewer than the round's all).
sub publish_and_wait_busy
{
	my ($round) = @_;
	my $before = receiver_stats($r, '/slow')->{received};
	sql("BEGIN; SELECT count(outbox_publish('crash.r$round', jsonb_build_object('i', i)))
		  FROM generate_series(1, $per_round) i; COMMIT;");
	$total += $per_round;
	ok(wait_until(60, sub { receiver_stats($r, '/slow')->{received} >= $before + 16 }),
		"round $round: deliveries under way");
	return;
}

# ---- kill -9 of the sink worker ----
for my $round (1 .. 5)
{
	my $sink = sink_pid($node, 'postgres');
	publish_and_wait_busy($round);
	kill 'KILL', $sink;
	# The postmaster resets the cluster; the launcher starts a new sink.
	my $new = sink_pid($node, 'postgres', $sink);
	ok($new, "round $round: after kill -9 of the sink worker ($sink) a new one runs ($new)");
}
ok($node->log_contains('was terminated by signal 9'), 'the kills were seen by the postmaster');

# ---- kill -9 of the postmaster ----
for my $round (6 .. 10)
{
	sink_pid($node, 'postgres');
	publish_and_wait_busy($round);
	$node->kill9;
	my $t0 = time;
	my $started = 0;
	for my $try (1 .. 60)
	{
		# A failed start reads the dead postmaster's pid file: forget it.
		$node->{_pid} = undef;
		last if $started = $node->start(fail_ok => 1);
		sleep 1;
	}
	ok($started, "round $round: the node starts again after kill -9 of the postmaster");
	note(sprintf('round %d: started again %.1f s after the kill', $round, time - $t0));
}

# ---- Nothing lost ----
my $t0 = time;
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the outbox drains');
note(sprintf('drained %.1f s after the last restart', time - $t0));
is(sql("SELECT count(*) FROM outbox_deliveries"), '0', 'no delivery left open');
is( sql("SELECT count(*) || ' ' || count(DISTINCT id) FROM outbox_events_archive
	WHERE type LIKE 'crash.%' AND deliveries->'to_slow'->>'status' = 'completed'"),
	"$total $total", "the archive has each of the $total events once, its delivery completed");
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type LIKE 'crash.%'"), $total, 'and nothing else');

ok(wait_until(10, sub { (receiver_stats($r, '/slow')->{answered}{200} // 0) >= $total }), 'the receiver answered them');
my %got;
$got{ $_->{id} }++ for grep { ($_->{answered} // '') eq '200' } @{ receiver_records($r, '/slow') };
my @ids = split /\n/, sql("SELECT id FROM outbox_events_archive WHERE type LIKE 'crash.%'");
my $missing = grep { !$got{$_} } @ids;
is($missing, 0, 'every archived event was received (answered 200) at least once');
my $st = receiver_stats($r, '/slow');
is($st->{unique_ids}, $total, "$total distinct webhook-ids received");
is($st->{bad_signatures}, 0, 'all signed');
my $dups = grep { $_ > 1 } values %got;
note("after 5 sink kills and 5 postmaster kills: $st->{received} requests for $total events, "
	  . "$st->{duplicates} duplicates (re-sends after a 200; $dups events received 200 more than once), answered "
	  . JSON::PP->new->canonical->encode($st->{answered}));

$node->stop;
stop_receiver($r);
done_testing();
