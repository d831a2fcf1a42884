# outbox_metrics() counts what the relay and the sink worker deliver, per
# subscription: deliveries made (with their commit-to-delivery lag in the
# histogram and in the last minute's p50/p99/max), retried and failed for
# good; an endpoint's state follows it (disabled after a 410). The counters
# survive a reload and start from zero at a restart. The log carries one line
# per change an operator must know about: relay started and stopped, a
# delivery failed for good, an endpoint disabled, the backlog older than
# outbox.backlog_warning_age (once) and back under it (once), never a line per
# event.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $node = webhook_node('metrics',
	'outbox.max_retries' => '2',
	'outbox.webhook_breaker_failures' => '1000',
	'outbox.backlog_warning_age' => '0');
setup_relay_db($node, 'postgres');
my $r = start_receiver();
sub sql { return $node->safe_psql('postgres', "SET outbox.require_transaction = off; $_[0]"); }

# One subscription's (or the total's, $sub undef) row: the named columns, joined by spaces.
sub metrics
{
	my ($sub, @cols) = @_;
	my $where = defined $sub ? "kind = 'subscription' AND name = '$sub'" : "kind = 'total'";
	return sql("SELECT " . join(" || ' ' || ", map { "coalesce(" . $_ . "::text, '-')" } @cols)
		  . " FROM outbox_metrics() WHERE $where");
}

sql(q{
	SELECT outbox_subscribe('orders', 'order.*', 'record_effect');
	SELECT outbox_subscribe('poisoned', 'poison.*', 'record_effect');
});
create_endpoint($node, $r, 'healthy', '/healthy');
create_endpoint($node, $r, 'gone', '/gone', { mode => 'status', status => 410 });
sql(q{
	SELECT outbox_subscribe_webhook('hook', 'order.*', 'healthy');
	SELECT outbox_subscribe_webhook('to_gone', 'gone.*', 'gone');
});
my $log_start = -s $node->logfile;

# ---- Deliveries counted per subscription, with their lag ----
sql("BEGIN; SELECT count(outbox_publish('order.created', jsonb_build_object('i', i))) FROM generate_series(1, 100) i; COMMIT;");
sql(q{SELECT outbox_publish('poison.one', '{"poison": "x"}')});
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events_archive WHERE type = 'order.created'"
	  . " AND deliveries->'orders'->>'status' = 'completed' AND deliveries->'hook'->>'status' = 'completed'", 100,
	'100 events delivered to the SQL handler and to the endpoint');
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_deliveries WHERE subscription = 'poisoned' AND status = 'failed'", 1,
	'the poisoned event failed for good (3 attempts)');

is(metrics('orders', qw(delivered_total failed_total retried_total lag_seconds_count)), '100 0 0 100',
	'orders: 100 delivered, each lag in the histogram');
is(metrics('hook', qw(delivered_total failed_total retried_total lag_seconds_count)), '100 0 0 100',
	'hook (webhooks): 100 delivered, each lag in the histogram');
is(metrics('poisoned', qw(delivered_total failed_total retried_total failed pending)), '0 1 2 1 0',
	'poisoned: 2 retries, then failed for good (and shown as failed)');
is(metrics(undef, qw(delivered_total failed_total retried_total)), '200 1 2', 'the total adds them up');
is(sql("SELECT count(*) FROM outbox_metrics() WHERE kind = 'subscription' AND name IN ('orders', 'hook')
          AND lag_p50_seconds BETWEEN 0 AND 120 AND lag_p99_seconds >= lag_p50_seconds
          AND lag_max_seconds >= lag_p99_seconds AND lag_seconds_sum > 0
          AND lag_seconds_bucket[array_length(lag_seconds_bucket, 1)] = 100"), '2',
	'the last minute gives p50 <= p99 <= max, and the histogram holds all 100');
is(sql("SELECT count(*) FROM outbox_metrics() WHERE kind = 'subscription' AND name = 'hook'
          AND lag_seconds_bucket[1] <= lag_seconds_bucket[5] AND lag_seconds_bucket[5] <= lag_seconds_bucket[10]"),
	'1', 'the buckets are cumulative');

# ---- Delivered directly (SQL subscriptions only, no delivery rows), many at once ----
sql("CREATE FUNCTION noop(e outbox_events) RETURNS void LANGUAGE sql AS \$\$ SELECT \$\$");
sql("SELECT count(outbox_subscribe('d' || lpad(i::text, 3, '0'), 'direct.*', 'noop')) FROM generate_series(1, 80) i");
sql("BEGIN; SELECT count(outbox_publish('direct.one', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'direct.one'", 5,
	'5 events to 80 SQL subscriptions archived');
is(sql("SELECT count(*) || ' ' || sum(delivered_total) || ' ' || sum(lag_seconds_count) FROM outbox_metrics()
          WHERE kind = 'subscription' AND name LIKE 'd0%'"), '80 400 400',
	'each of the 80 subscriptions counted its 5 deliveries (one batch, 80 names)');

# ---- An endpoint answering 410 is disabled: its state shows ----
sql("SELECT outbox_publish('gone.one', '{}')");
wait_for_relay($node, 'postgres',
	"SELECT endpoint_state FROM outbox_metrics() WHERE kind = 'subscription' AND name = 'to_gone'", 'disabled',
	'the 410 endpoint is shown disabled');
is(metrics('to_gone', qw(endpoint pending failed_total retried_total in_flight)), 'gone 1 0 0 0',
	'its delivery waits (pending), charged nothing');
is(metrics(undef, qw(due in_flight)), '1 0',
	'the total counts the waiting delivery as due, not in flight (the event is handed over, not held)');

# ---- The backlog warning: once over the age, once back under ----
sql("ALTER SYSTEM SET outbox.backlog_warning_age = '2s'; SELECT pg_reload_conf();");
sql("SELECT outbox_publish('nobody.listens', '{}')");    # waits for a consumer
ok($node->wait_for_log(qr/the oldest pending event of database "postgres" has waited \d+ s, longer than outbox.backlog_warning_age \(2 s\)/,
	$log_start), 'the relay warns of the backlog');
# The disabled endpoint's delivery and the unclaimed event keep it over the
# age for a few more checks: still one line.
sleep 3;
receiver_config($r, '/gone', { mode => 'ok', status => 200 });
sql("SELECT outbox_resume_endpoint('gone')");
sql("SELECT count(outbox_complete(ARRAY[id], lease_token)) FROM outbox_claim(10, consumer => 'ops', types => ARRAY['nobody.*'])");
ok($node->wait_for_log(qr/the backlog of database "postgres" is back under outbox.backlog_warning_age/, $log_start),
	'the relay says when it is back under');
wait_for_relay($node, 'postgres', "SELECT pending FROM outbox_metrics() WHERE kind = 'total'", '0',
	'nothing pending any more');

my $log = slurp_file($node->logfile, $log_start);
my @warned = $log =~ /has waited \d+ s, longer than/g;
is(scalar @warned, 1, 'the backlog warning was logged once');
my @failed = $log =~ /failed for good/g;
is(scalar @failed, 1, 'one line for the delivery that failed for good');
my @disabled = $log =~ /endpoint "gone" is disabled: the endpoint answered 410 Gone/g;
is(scalar @disabled, 1, 'one line for the disabled endpoint');
# (The test's own statements are logged: log_statement = all.)
my @per_event = grep { /order\.created/ && !/statement:/ } split /\n/, $log;
is(scalar @per_event, 0, 'no line for any of the 100 delivered events');
is(sql("SELECT delivered_total FROM outbox_metrics() WHERE kind = 'consumer' AND name = 'ops'"), '1',
	'the consumer\'s completion is counted under its name');

# ---- A reload keeps the counters; a restart starts them from zero ----
sql("SELECT pg_reload_conf()");
is(metrics('orders', qw(delivered_total)), '100', 'a reload keeps the counters');
my $since = sql("SELECT counters_since FROM outbox_metrics() WHERE kind = 'total'");
$log_start = -s $node->logfile;
$node->restart;
ok($node->wait_for_log(qr/outbox relay started for database "postgres"/, $log_start), 'the relay\'s start is logged');
$log = slurp_file($node->logfile, $log_start);
like($log, qr/outbox relay stopped for database "postgres"/, 'the relay\'s stop is logged');
like($log, qr/outbox sink stopped for database "postgres"/, 'the sink worker\'s stop is logged');
is(metrics('orders', qw(delivered_total lag_seconds_count)), '0 0', 'a restart starts the counters from zero');
sql("SELECT outbox_publish('order.created', '{\"after\": 1}')");
wait_for_relay($node, 'postgres', "SELECT delivered_total FROM outbox_metrics() WHERE kind = 'subscription' AND name = 'orders'",
	'1', 'and they count again');
ok(sql("SELECT counters_since > '$since' FROM outbox_metrics() WHERE kind = 'total'") eq 't',
	'counters_since tells when they started');

# ---- outbox.metrics_max_names bounds the names; the total keeps counting ----
$node->append_conf('postgresql.conf', "outbox.metrics_max_names = 16\n");
$node->restart;
sql("SELECT count(outbox_publish('job.run', '{}')) FROM generate_series(1, 40)");
sql(q{DO $$
	DECLARE r record;
	BEGIN
		FOR i IN 1..40 LOOP
			SELECT * INTO r FROM outbox_claim(1, consumer => 'pod-' || i, types => ARRAY['job.*']);
			PERFORM outbox_complete(ARRAY[r.id], r.lease_token);
			COMMIT;
		END LOOP;
	END $$});
is(sql("SELECT count(*) <= 16 FROM outbox_metrics() WHERE kind <> 'total' AND counters_since IS NOT NULL"), 't',
	'at most 16 names kept');
is(sql("SELECT delivered_total >= 40 AND counters_dropped > 0 FROM outbox_metrics() WHERE kind = 'total'"), 't',
	'the total counted all 40 deliveries, and how many found no name');
is(sql("SELECT count(*) FROM pg_shmem_allocations WHERE name = 'outbox metrics table'"), '1',
	'the table is in shared memory, of a size fixed at start');

stop_receiver($r);
$node->stop;
done_testing();
