# Crashes mid-production to Kafka (librdkafka's mock cluster, 3 brokers,
# each answer delayed 150 ms so that records are in flight): five rounds of
# kill -9 of the sink worker, then five of kill -9 of the postmaster (the
# node started again), each while deliveries are in flight, then a round
# without a crash. Nothing is lost: every event is on its topic (read back),
# the outbox drains, the archive has each event once, completed. Duplicates
# are counted and only around the crashes: a crash round has at most
# max_in_flight of them, the round without a crash none; per key the last
# record of the partition is the key's last event. Then a consumer group
# reads everything exactly once after dedupe on the id header: one member
# is killed (kill -9) mid-read, two more read on together; together they
# have every event, and the group has nothing left afterwards.
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
use OutboxKafka;

my $t_start = time;
my $mock = start_mock(3, 'outbox.event.crash:3', 'outbox.event.calm:3');
mock_cmd($mock, 'rtt all 150');

my $node = webhook_node('kcrash',
	'restart_after_crash' => 'on',
	'outbox.max_retries' => '1000',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');

sub sql { return $node->safe_psql('postgres', $_[0]); }

my $max_in_flight = 40;
# A short timeout, so that leases of the killed worker's deliveries run out soon.
sql("SELECT outbox_create_kafka_target('k', '$mock->{bootstraps}', timeout => '2 s',"
	  . " max_in_flight => $max_in_flight)");
sql("SELECT outbox_subscribe_kafka('to_k', '*', 'k')");

my $per_round = 200;
my $total = 0;
my %round_of;    # type -> round

sub publish_round
{
	my ($round, $type) = @_;
	sql("BEGIN; SELECT count(outbox_publish('$type', jsonb_build_object('i', i, 'round', $round), 'key' || (i % 20)))
		  FROM generate_series(1, $per_round) i; COMMIT;");
	$total += $per_round;
	$round_of{$type} = $round;
	return;
}

# Publish a round's events and wait until deliveries are in flight after
# some of the round's were already settled (archived).
sub publish_and_wait_busy
{
	my ($round) = @_;
	publish_round($round, "crash.r$round");
	ok( wait_until(60, sub {
				my $v = eval {
					$node->safe_psql('postgres',
						"SELECT (SELECT count(*) FROM outbox_events_archive WHERE type = 'crash.r$round') >= 10
						    AND (SELECT count(*) FROM outbox_deliveries WHERE status = 'active') > 0");
				} // '';
				$v eq 't';
			}),
		"round $round: records in flight after some were acknowledged");
	return;
}

# ---- kill -9 of the sink worker ----
for my $round (1 .. 5)
{
	my $sink = sink_pid($node, 'postgres');
	publish_and_wait_busy($round);
	kill 'KILL', $sink;
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
	my $started = 0;
	for my $try (1 .. 60)
	{
		$node->{_pid} = undef;    # a failed start reads the dead postmaster's pid file
		last if $started = $node->start(fail_ok => 1);
		sleep 1;
	}
	ok($started, "round $round: the node starts again after kill -9 of the postmaster");
}

# ---- Nothing lost ----
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the outbox drains');
# A round without a crash, delivered on its own.
publish_round(11, 'calm.r11');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the calm round drains');
is(sql("SELECT count(*) FROM outbox_deliveries"), '0', 'no delivery left open');
is( sql("SELECT count(*) || ' ' || count(DISTINCT id) FROM outbox_events_archive
	WHERE deliveries->'to_k'->>'status' = 'completed'"),
	"$total $total", "the archive has each of the $total events once, its delivery completed");

mock_cmd($mock, 'rtt all 0');
my %ev;    # id -> [type, key, seq]
for (split /\n/, sql("SELECT id, type, ordering_key, seq FROM outbox_events_archive"))
{
	my @f = split /\|/;
	$ev{ $f[0] } = [ @f[ 1 .. 3 ] ];
}
my @recs = (@{ read_topic($mock, 'outbox.event.crash') }, @{ read_topic($mock, 'outbox.event.calm') });
my (%n, $unknown);
$n{ $_->{id} // '' }++ for @recs;
$unknown = grep { !$ev{$_} } keys %n;
is($unknown, 0, 'every record read back is an archived event');
my $missing = grep { !$n{$_} } keys %ev;
is($missing, 0, "read back: every one of the $total events is on its topic");
my %dups_in;    # round -> duplicate records
for my $id (grep { $n{$_} > 1 } keys %n) { $dups_in{ $round_of{ $ev{$id}[0] } } += $n{$id} - 1; }
my $dups = 0;
$dups += $_ for values %dups_in;
note("after 5 sink kills and 5 postmaster kills: " . scalar(@recs) . " records for $total events, $dups duplicates; per round: "
	  . join(', ', map { "r$_: " . ($dups_in{$_} // 0) } 1 .. 11));
ok(!grep({ $_ > $max_in_flight } values %dups_in), "at most max_in_flight ($max_in_flight) duplicates in any crash round");
is($dups_in{11} // 0, 0, 'no duplicate in the round without a crash');

# Per key: one partition, and the last record is the key's last event.
my (%parts, %last);
for my $r (@recs)
{
	next unless $ev{ $r->{id} // '' };
	my $k = "$r->{topic}/$r->{key}";
	$parts{$k}{ $r->{partition} } = 1;
	$last{$k} = $r if !$last{$k} || $r->{offset} > $last{$k}{offset};
}
my %maxseq;
for my $id (keys %ev)
{
	my ($agg) = $ev{$id}[0] =~ /^([^.]+)/;
	my $k = "outbox.event.$agg/$ev{$id}[1]";
	$maxseq{$k} = $ev{$id}[2] if !defined $maxseq{$k} || $ev{$id}[2] > $maxseq{$k};
}
my $bad_order = grep { keys(%{ $parts{$_} }) != 1 || $ev{ $last{$_}{id} }[2] != $maxseq{$_} } keys %last;
is($bad_order, 0, 'per key: one partition, its last record is the last event of the key (' . scalar(keys %last) . ' keys)');

# ---- A consumer group: exactly once after dedupe on id ----
my @topics = ('outbox.event.crash', 'outbox.event.calm');
my ($first) = run_consumers($mock, 'g1', 1, 3000, \@topics, 300);
# Idle longer than a rebalance takes (a member leaving hands its partitions on).
my @rest = run_consumers($mock, 'g1', 2, 8000, \@topics);
my %seen;
my $read = 0;
for my $member ($first, @rest)
{
	for my $r (grep { @$_ == 5 } @$member) { $seen{ $r->[3] }++; $read++; }
}
note(sprintf('the group read %d records: the killed member %d, then %d and %d together', $read,
		scalar(@$first), scalar(@{ $rest[0] }), scalar(@{ $rest[1] })));
ok(@{ $rest[0] } && @{ $rest[1] }, 'both later members got records (the partitions were shared)');
is(scalar(grep { $ev{$_} } keys %seen), $total, "after dedupe on id the group has every one of the $total events");
is(scalar(grep { !$ev{$_} } keys %seen), 0, 'and nothing else');
my ($again) = run_consumers($mock, 'g1', 1, 2000, \@topics);
is(scalar(@$again), 0, 'the group has nothing left: its offsets were committed');

stop_mock($mock);
$node->stop;
note(sprintf('took %.0f s', time - $t_start));
done_testing();
