# One event, three subscriptions (a SQL handler and two endpoints, one of
# them failing for a while): each outcome is independent, every one is
# reached, and the archive row records the three. A stalled endpoint does not
# hold back a healthy one; SIGTERM stops the sink worker at once although
# requests hang, the launcher starts it again, and nothing is lost.
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

my $node = webhook_node('whisolation',
	'outbox.max_retries' => '100',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub endpoint { return create_endpoint($node, $r, @_); }

# ---- One event type: a SQL handler and two endpoints, one failing ----
sql("SELECT outbox_subscribe('iso_sql', 'iso.*', 'record_effect')");
endpoint('ok1', '/ok1');
endpoint('bad1', '/bad1', { mode => 'status', status => 500 });
sql("SELECT outbox_subscribe_webhook('iso_ok', 'iso.*', 'ok1')");
sql("SELECT outbox_subscribe_webhook('iso_bad', 'iso.*', 'bad1')");
sql("BEGIN; SELECT count(outbox_publish('iso.x', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");

ok(wait_until(30, sub { receiver_stats($r, '/ok1')->{unique_ids} >= 5 }), 'the healthy endpoint got the five events');
ok(wait_until(30, sub { receiver_stats($r, '/bad1')->{received} >= 15 }),
	'the failing endpoint got attempts (three per event at least)');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'iso.x'", 5,
	'the SQL handler ran for the five while the endpoint fails');
is(sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'iso_bad' AND completed_on IS NULL"),
	'5', 'the failing endpoint\'s five deliveries are pending');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'iso.x'"), '0',
	'the events are not archived while one delivery is open');
my $fails = receiver_stats($r, '/bad1')->{received};
receiver_config($r, '/bad1', { mode => 'ok', status => 200 });
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events_archive WHERE type = 'iso.x'
	  AND (SELECT count(*) FROM jsonb_each(deliveries) d WHERE d.value->>'status' = 'completed') = 3
	  AND deliveries ?& ARRAY['iso_sql', 'iso_ok', 'iso_bad']", 5,
	'once it answers 200 the events are archived with three completed outcomes each');
note("the failing endpoint was sent $fails attempts before it answered 200");
is(sql("SELECT count(*) || ' ' || count(DISTINCT event_id) FROM effects WHERE type = 'iso.x'"), '5 5',
	'the SQL handler\'s effect exists exactly once per event');
my $ok1 = receiver_stats($r, '/ok1');
is("$ok1->{received} $ok1->{unique_ids} $ok1->{duplicates} $ok1->{bad_signatures}", '5 5 0 0',
	'the healthy endpoint received each event exactly once, signed');
my $bad1 = receiver_stats($r, '/bad1');
is("$bad1->{unique_ids} $bad1->{answered}{200} $bad1->{bad_signatures}", '5 5 0',
	'the failing endpoint eventually received each, once answered 200');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'iso.x'
	AND (deliveries->'iso_bad'->>'attempts')::int > 1 AND (deliveries->'iso_ok'->>'attempts')::int = 1"),
	'5', 'the outcomes keep their own attempt counts');

# ---- A stalled endpoint beside a healthy one ----
# The stalled endpoint's requests time out after 5 s (its timeout), so at
# most max_in_flight (16) of them hang at a time.
endpoint('stalled', '/stalled', { mode => 'stall' }, "timeout => '5 s'");
endpoint('fast', '/fast');
sql("SELECT outbox_subscribe_webhook('to_stalled', 'st.*', 'stalled')");
sql("SELECT outbox_subscribe_webhook('to_fast', 'fa.*', 'fast')");
my $t0 = time;
sql(q{BEGIN;
	SELECT count(outbox_publish('st.x', jsonb_build_object('i', i))) FROM generate_series(1, 100) i;
	SELECT count(outbox_publish('fa.x', jsonb_build_object('i', i))) FROM generate_series(1, 100) i;
	COMMIT;});
my $fast_ok = wait_until(4, sub { receiver_stats($r, '/fast')->{unique_ids} >= 100 });
my $took = time - $t0;
ok($fast_ok, 'the healthy endpoint got its 100 events within 4 s beside a stalled one');
note(sprintf('healthy endpoint: 100 events in %.2f s beside the stalled one', $took));
my $inflight = sql("SELECT in_flight FROM outbox_endpoint_stats() WHERE endpoint = 'stalled'");
cmp_ok($inflight, '>', 0, "the stalled endpoint's deliveries are in flight meanwhile ($inflight)");
my $stalled_now = receiver_stats($r, '/stalled')->{received};
cmp_ok($stalled_now, '>', 0, "the stalled endpoint holds requests ($stalled_now received)");
cmp_ok($stalled_now, '<=', 16, 'no more than its max_in_flight (16) at once');
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events_archive WHERE type = 'fa.x' AND deliveries->'to_fast'->>'status' = 'completed'",
	100, 'the healthy endpoint\'s events are archived completed');

# SIGTERM to the sink worker while requests hang: it ends at once.
my $sink = sink_pid($node, 'postgres');
$t0 = time;
kill 'TERM', $sink;
my $gone = wait_until(10, sub { !kill(0, $sink) });
my $stop = time - $t0;
ok($gone, 'the sink worker ends after SIGTERM');
note(sprintf('the sink worker ended %.3f s after SIGTERM with requests in flight', $stop));
cmp_ok($stop, '<', 1, 'in under a second');
my $new = sink_pid($node, 'postgres', $sink);
ok($new && $new != $sink, "the launcher starts it again (pid $new)");

receiver_config($r, '/stalled', { mode => 'ok', status => 200 });
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events_archive WHERE type = 'st.x' AND deliveries->'to_stalled'->>'status' = 'completed'",
	100, 'after the stall ends every stalled event is delivered and archived');
is(sql("SELECT count(*) FROM outbox_events WHERE type IN ('st.x', 'fa.x')"), '0', 'none left in the outbox');
my $st = receiver_stats($r, '/stalled');
is($st->{unique_ids}, 100, 'the stalled endpoint received all 100 (none lost)');
is($st->{bad_signatures}, 0, 'all signed');
note("stalled endpoint: $st->{received} requests, $st->{duplicates} duplicates (re-sends after a 200), answered "
	  . JSON::PP->new->canonical->encode($st->{answered}));
my $fa = receiver_stats($r, '/fast');
is("$fa->{received} $fa->{unique_ids} $fa->{duplicates}", '100 100 0',
	'the healthy endpoint: each exactly once, no duplicates');

$node->stop;
stop_receiver($r);
done_testing();
