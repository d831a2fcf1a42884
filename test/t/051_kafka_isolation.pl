# A slow Kafka cluster and a Kafka cluster that is down do not hold back
# the other sinks: the same events go to a Kafka target (librdkafka's mock
# cluster, 3 brokers) and to a webhook endpoint (test/webhook/receiver.mjs),
# and other events to an SQL handler. While every broker answers after 3 s,
# the webhook receives all of a batch and the SQL handler runs all of its
# events before the first Kafka acknowledgement; while every broker is down
# (beyond the target's timeout, shortened meanwhile with
# outbox_alter_kafka_target()) they are delivered as well, and the Kafka
# deliveries wait. Once the brokers are back, every event is on its topic.
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

my $mock = start_mock(3, 'outbox.event.mix:3');
my $node = webhook_node('kiso',
	'outbox.max_retries' => '1000',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

# The timeout is longer than the slow cluster's answers (else every request
# would time out); shortened with outbox_alter_kafka_target() before the outage.
sql("SELECT outbox_create_kafka_target('k', '$mock->{bootstraps}', timeout => '15 s')");
sql("SELECT outbox_subscribe_kafka('to_k', 'mix.*', 'k')");
create_endpoint($node, $r, 'hook', '/fast', {});
sql("SELECT outbox_subscribe_webhook('to_hook', 'mix.*', 'hook')");
sql("SELECT outbox_subscribe('effects', 'sql.*', 'record_effect')");

# Warm up: the producer has its metadata and connections.
sql("SELECT outbox_publish('mix.warmup', '{}', NULL, NULL)");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'warm-up event delivered to both');

sub publish
{
	my ($tag, $n) = @_;
	sql("BEGIN;
		SELECT count(outbox_publish('mix.$tag', jsonb_build_object('i', i), 'k' || (i % 5))) FROM generate_series(1, $n) i;
		SELECT count(outbox_publish('sql.$tag', jsonb_build_object('i', i), 'k' || (i % 5))) FROM generate_series(1, $n) i;
		COMMIT;");
	return;
}

sub kafka_done
{
	my ($tag) = @_;
	return sql("SELECT (SELECT count(*) FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
	                     WHERE d.subscription = 'to_k' AND e.type = 'mix.$tag' AND d.completed_on IS NOT NULL)
	                 + (SELECT count(*) FROM outbox_events_archive WHERE type = 'mix.$tag')");
}

# ---- A slow cluster: every answer after 3 s ----
is(mock_cmd($mock, 'rtt all 3000'), 'ok rtt all 3000', 'every broker answers after 3 s');
my $t0 = time;
publish('slow', 50);
my $got_hook = wait_until(30, sub { receiver_stats($r, '/fast')->{received} >= 51 });
my $t_hook = time - $t0;
my $got_sql = $node->poll_query_until('postgres', "SELECT count(*) FROM effects WHERE type = 'sql.slow'", '50');
my $t_sql = time - $t0;
my $kafka_then = kafka_done('slow');
ok($got_hook && $got_sql, sprintf('the webhook received its 50 (%.2f s) and the SQL handler ran its 50 (%.2f s)',
		$t_hook, $t_sql));
is($kafka_then, '0', 'before the slow cluster acknowledged any of them');
ok($node->poll_query_until('postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'mix.slow'", '50'),
	'then the 50 Kafka deliveries complete and the events are archived');
note(sprintf('the slow cluster acknowledged all 50 %.2f s after commit', time - $t0));
mock_cmd($mock, 'rtt all 0');

# ---- Every broker down, longer than the target's timeout ----
sql("SELECT outbox_alter_kafka_target('k', timeout => '2 s')");
is(sql("SELECT timeout_ms FROM outbox_endpoints WHERE name = 'k'"), '2000', 'the target\'s timeout is 2 s now');
is(mock_cmd($mock, 'down all'), 'ok down all', 'every broker down');
$t0 = time;
publish('down', 50);
$got_hook = wait_until(30, sub { receiver_stats($r, '/fast')->{received} >= 101 });
$t_hook = time - $t0;
$got_sql = $node->poll_query_until('postgres', "SELECT count(*) FROM effects WHERE type = 'sql.down'", '50');
$t_sql = time - $t0;
ok($got_hook && $got_sql, sprintf('the webhook received its 50 (%.2f s) and the SQL handler ran its 50 (%.2f s)',
		$t_hook, $t_sql));
ok($node->poll_query_until('postgres', "SELECT sink_queue > 0 FROM outbox_worker_stats() WHERE database = 'postgres'", 't'),
	'outbox_worker_stats(): sink_queue shows the records the producer holds');
usleep(4_000_000);    # beyond the timeout: delivery reports failed meanwhile
is(kafka_done('down'), '0', 'no Kafka delivery completed while the brokers are down');
is(sql("SELECT count(*) FROM outbox_events WHERE type = 'mix.down'"), '50', 'the 50 events wait in the outbox');
like(sql("SELECT last_error FROM outbox_endpoint_stats() WHERE endpoint = 'k'"), qr/kafka: /,
	'the target shows the error');
is(sql("SELECT last_error IS NULL FROM outbox_endpoint_stats() WHERE endpoint = 'hook'"), 't',
	'the webhook endpoint has none');
# More webhook and SQL events while the brokers are still down.
publish('down2', 20);
ok(wait_until(30, sub { receiver_stats($r, '/fast')->{received} >= 121 })
	  && $node->poll_query_until('postgres', "SELECT count(*) FROM effects WHERE type = 'sql.down2'", '20'),
	'later events still reach the webhook and the SQL handler at once');
is(mock_cmd($mock, 'up all'), 'ok up all', 'brokers up again');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the outbox drains');
ok($node->poll_query_until('postgres', "SELECT sink_queue FROM outbox_worker_stats() WHERE database = 'postgres'", '0'),
	'and sink_queue is 0 again');
my %ids = map { ($_->{id} // '') => 1 } @{ read_topic($mock, 'outbox.event.mix') };
my @want = split /\n/, sql("SELECT id FROM outbox_events_archive WHERE type LIKE 'mix.%'");
is(scalar(grep { !$ids{$_} } @want), 0, 'read back: every one of the ' . scalar(@want) . ' mix events is on its topic');
my $st = receiver_stats($r, '/fast');
is($st->{unique_ids}, scalar(@want), 'and the webhook received each');

stop_mock($mock);
$node->stop;
stop_receiver($r);
done_testing();
