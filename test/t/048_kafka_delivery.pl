# The kafka sink delivers events to Kafka topics, laid out as Debezium's
# outbox router does, against librdkafka's mock cluster (3 brokers, in a
# process of its own: test/kafka/mockcluster.c, built here), read back with
# kcat: 300 events over 10 keys reach their topics (by aggregate) once each
# with key, value, headers and timestamp, in publish order per key, and are
# archived completed; while every broker is down events wait (nothing
# archived, nothing lost) and go out once the brokers are back; a delivery
# is settled only after its delivery report; an SQL handler is not held up
# meanwhile. (Two Kafka subscriptions share the target.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run ();
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

# ---- The mock cluster ----
my $tmp = PostgreSQL::Test::Utils::tempdir();
my $src = "$FindBin::RealBin/../kafka/mockcluster.c";
my $mock = "$tmp/mockcluster";
my $cflags = `pkg-config --cflags --libs rdkafka`;
chomp $cflags;
system("cc -O1 -o $mock $src $cflags") == 0 or BAIL_OUT("cannot build $src");
my ($min, $mout) = ('', '');
my $mh = IPC::Run::start([ $mock, '3', 'outbox.event.order:3', 'outbox.event.invoice:3' ],
	'<', \$min, '>', \$mout, '2>', "$tmp/mockcluster.log");

sub mock_lines { my @l = split /\n/, $mout; return @l; }

sub mock_wait_lines
{
	my ($n) = @_;
	my $deadline = time + 10;
	while (scalar(mock_lines()) < $n)
	{
		$mh->pump_nb;
		BAIL_OUT('the mock cluster does not answer') if time > $deadline;
		usleep(10_000);
	}
	return (mock_lines())[ $n - 1 ];
}
my $bootstraps = mock_wait_lines(1);
like($bootstraps, qr/^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}$/, "a 3-broker mock cluster: $bootstraps");

# A command to the cluster; its answer line.
sub mock
{
	my ($cmd) = @_;
	my $n = scalar(mock_lines());
	$min .= "$cmd\n";
	return mock_wait_lines($n + 1);
}

# Every record of a topic, as kcat reads it (-J: topic, partition, offset,
# ts, headers [name, value, ...], key, payload).
sub read_topic
{
	my ($topic) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-C', '-b', $bootstraps, '-t', $topic, '-o', 'beginning', '-e', '-J', '-q' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(60));
	return [ map { decode_json($_) } grep { /^\{/ } split /\n/, $out ];
}

# ---- The node ----
my $node = webhook_node('kafka',
	'outbox.max_retries' => '1000',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# The archived events of a type whose delivery to one of the two Kafka
# subscriptions completed.
sub archived_completed
{
	my ($type_like) = @_;
	return "SELECT count(*) FROM outbox_events_archive WHERE type LIKE '$type_like'"
	  . " AND 'completed' IN (deliveries->'to_kafka'->>'status', deliveries->'to_kafka_invoices'->>'status')";
}

sql("SELECT outbox_create_kafka_target('kafka', '$bootstraps', properties => '{\"linger.ms\": \"5\"}',"
	  . " timeout => '3 seconds')");
sql("SELECT outbox_subscribe_kafka('to_kafka', 'order.*', 'kafka')");
sql("SELECT outbox_subscribe_kafka('to_kafka_invoices', 'invoice.*', 'kafka')");
sql("SELECT outbox_subscribe('effects', 'audit.*', 'record_effect')");
is(sql("SELECT sink || ' ' || endpoint FROM outbox_subscriptions WHERE name = 'to_kafka'"),
	'kafka kafka', 'a kafka subscription on the target');

# ---- 300 events over 10 keys ----
my $t0 = time;
sql(q{SET outbox.require_transaction = off;
	BEGIN;
	SELECT count(outbox_publish(CASE WHEN i % 2 = 0 THEN 'order.created' ELSE 'invoice.paid' END,
		jsonb_build_object('i', i, 'name', 'n' || i),
		'key' || (i % 10),
		jsonb_build_object('tenant', 't' || (i % 3), 'id', 'not-the-id')))
	  FROM generate_series(1, 300) i;
	SELECT count(outbox_publish('audit.logged', jsonb_build_object('i', i), 'key' || (i % 10)))
	  FROM generate_series(1, 150) i;
	COMMIT;});
ok($node->poll_query_until('postgres', archived_completed('%'), '300'),
	'the 300 events are archived with their Kafka delivery completed');
note(sprintf('300 events delivered and archived %.2f s after commit', time - $t0));
ok($node->poll_query_until('postgres', "SELECT count(*) FROM effects WHERE type = 'audit.logged'", '150'),
	'the SQL handler runs its 150 events (of the same keys) too');

my %ev;
for my $row (split /\n/, sql(q{SELECT id, type, payload::text, ordering_key, headers->>'tenant',
		(extract(epoch FROM occurred_at) * 1000)::bigint, seq FROM outbox_events_archive WHERE type NOT LIKE 'audit.%'}))
{
	my @f = split /\|/, $row;
	$ev{ $f[0] } = { type => $f[1], payload => $f[2], key => $f[3], tenant => $f[4], ts => $f[5], seq => $f[6] };
}
my @recs = (@{ read_topic('outbox.event.order') }, @{ read_topic('outbox.event.invoice') });
is(scalar(@recs), 300, 'read back: 300 records on the two aggregate topics');
my (%seen, $bad, $diag);
my %by_key;
for my $r (@recs)
{
	my %h = @{ $r->{headers} // [] };
	my $e = $ev{ $h{id} // '' };
	$seen{ $h{id} // '' }++;
	if (!$e) { $bad++; $diag = "unknown id in $r->{topic}"; next; }
	my ($agg) = $e->{type} =~ /^([^.]+)/;
	if ($r->{topic} ne "outbox.event.$agg" || ($r->{key} // '') ne $e->{key} || $r->{payload} ne $e->{payload}
		|| $r->{ts} != $e->{ts} || $h{type} ne $e->{type} || $h{tenant} ne $e->{tenant})
	{
		$bad++;
		$diag = "record of $h{id}: " . encode_json($r);
	}
	push @{ $by_key{ $r->{key} } }, [ $r->{partition}, $r->{offset}, $e->{seq} ];
}
ok(!$bad, 'every record: topic by aggregate, key = ordering key, value = payload, id/type/event headers, timestamp = occurred_at')
  or diag($diag);
is(scalar(keys %seen), 300, 'each event once (300 distinct id headers)');
my $order_ok = 1;
for my $k (keys %by_key)
{
	my @l = sort { $a->[1] <=> $b->[1] } @{ $by_key{$k} };
	my %parts = map { $_->[0] => 1 } @l;
	$order_ok = 0 if keys(%parts) != 1;
	for my $i (1 .. $#l) { $order_ok = 0 if $l[$i][2] <= $l[ $i - 1 ][2]; }
}
ok($order_ok && keys(%by_key) == 10, 'per key: one partition, offsets in publish order (10 keys)');

# ---- Settled only after the delivery report ----
mock('rtt all 1500');
usleep(200_000);
sql(q{SELECT outbox_publish('order.slow', '{"slow": true}', 'slowkey', NULL)});
usleep(700_000);
is(sql(q{SELECT count(*) FROM outbox_events_archive WHERE type = 'order.slow'}), '0',
	'while the brokers are slow to acknowledge, the event is not archived');
ok($node->poll_query_until('postgres', archived_completed('order.slow'), '1'),
	'it is archived once the delivery report came');
mock('rtt all 0');

# ---- All brokers down: events wait, then go out ----
is(mock('down all'), 'ok down all', 'all brokers down');
sql(q{SET outbox.require_transaction = off;
	SELECT count(outbox_publish('order.during_outage', jsonb_build_object('i', i), 'okey' || (i % 3), NULL))
	  FROM generate_series(1, 20) i;});
sql(q{SET outbox.require_transaction = off;
	SELECT outbox_publish('invoice.during_outage', '{}', NULL, NULL);
	SELECT outbox_publish('audit.during_outage', '{}', NULL, NULL);});
usleep(5_000_000);    # longer than the target's timeout (3 s): delivery reports failed meanwhile
is(sql(q{SELECT count(*) FROM outbox_events_archive WHERE type = 'order.during_outage'}), '0',
	'while the brokers are down nothing is archived');
is(sql(q{SELECT count(*) FROM outbox_deliveries WHERE subscription LIKE 'to_kafka%' AND completed_on IS NULL}), '21',
	'the 21 deliveries wait');
like(sql(q{SELECT last_error FROM outbox_endpoints WHERE name = 'kafka'}), qr/kafka: .*(TIMED_OUT|TRANSPORT)/,
	'the target shows the delivery report error');
ok($node->poll_query_until('postgres', "SELECT count(*) FROM effects WHERE type = 'audit.during_outage'", '1'),
	'the SQL handler is not held up by the outage');
is(mock('up all'), 'ok up all', 'brokers up again');
ok($node->poll_query_until('postgres', archived_completed('%during_outage'), '21'),
	'once they are back, every event of the outage is delivered and archived');
my @after = grep {
	my %h = @{ $_->{headers} // [] };
	($h{type} // '') eq 'order.during_outage'
} @{ read_topic('outbox.event.order') };
my %ids = map { my %h = @{ $_->{headers} }; ($h{id} => 1) } @after;
is(scalar(keys %ids), 20, 'read back: all 20 order events of the outage are on the topic'
	  . ' (' . scalar(@after) . ' records: a timed-out report may have been written)');

$min .= "quit\n";
$mh->finish;
$node->stop;
done_testing();
