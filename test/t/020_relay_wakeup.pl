# The relay starts, shows in pg_stat_activity, and wakes on commit: with a
# poll interval of ten minutes, a committed event is delivered at once and a
# rolled-back one never. Events no subscription matches stay for SQL
# consumers; an event matched by two subscriptions reaches each once; a
# paused subscription holds back its own deliveries, not the others'.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('wakeup', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');

my $pid = relay_pid($node, 'postgres');
ok($pid > 0, 'the relay worker runs');
is( $node->safe_psql('postgres',
		"SELECT application_name FROM pg_stat_activity WHERE backend_type = 'outbox launcher'"),
	'outbox launcher', 'the launcher shows in pg_stat_activity');
is( $node->safe_psql('postgres',
		"SELECT application_name || ' ' || datname FROM pg_stat_activity WHERE pid = $pid"),
	'outbox relay postgres', 'the relay shows with its application name and database');

$node->safe_psql('postgres', "SELECT outbox_subscribe('users', 'user.*', 'record_effect')");

# Wake on commit: each event is handled well within a second of its commit,
# although the worker would otherwise sleep ten minutes.
for my $i (1 .. 5)
{
	$node->safe_psql('postgres',
		"BEGIN; SELECT outbox_publish('user.created', '{\"n\": $i}'); COMMIT;");
	$node->poll_query_until('postgres', "SELECT count(*) FROM effects", $i)
	  or die "event $i not delivered";
}
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM effects f JOIN outbox_events_archive a ON a.id = f.event_id
		  WHERE f.handled_at - a.created_on < interval '1 second'"),
	'5', 'five committed events delivered within a second of commit (poll interval: 10 min)');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_events_archive WHERE status = 'completed'"),
	'5', 'the delivered events moved to the archive');

# Rolled back: never delivered. A later committed event shows the worker ran.
$node->safe_psql('postgres',
	"BEGIN; SELECT outbox_publish('user.rolled_back', '{}'); ROLLBACK;
	 BEGIN; SELECT outbox_publish('user.after', '{}'); COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'user.after'", 1,
	'the event committed after a rollback is delivered');
is( $node->safe_psql('postgres',
		"SELECT (SELECT count(*) FROM effects WHERE type = 'user.rolled_back')
		      + (SELECT count(*) FROM outbox_events_archive WHERE type = 'user.rolled_back')
		      + (SELECT count(*) FROM outbox_events WHERE type = 'user.rolled_back')"),
	'0', 'the rolled-back event was never seen');

# No subscription for order.*: the event stays, visible in the stats.
$node->safe_psql('postgres',
	"BEGIN; SELECT outbox_publish('order.created', '{}'); SELECT outbox_publish('user.marker', '{}'); COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'user.marker'", 1,
	'the matched event of the transaction is delivered');
is($node->safe_psql('postgres', "SELECT status FROM outbox_events WHERE type = 'order.created'"),
	'created', 'an event no subscription matches is left in outbox_events');
is($node->safe_psql('postgres', "SELECT created FROM outbox_stats()"),
	'1', 'and counted by outbox_stats()');

# A second subscription for everything: the waiting event is delivered to
# it, and a new user event reaches both handlers, once each.
$node->safe_psql('postgres', q{
	CREATE TABLE audit (event_id uuid PRIMARY KEY, type text);
	CREATE FUNCTION audit_event(e outbox_events) RETURNS void LANGUAGE sql
		AS $$ INSERT INTO public.audit VALUES (e.id, e.type) $$;
	SELECT outbox_subscribe('audit', '*', 'audit_event');
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM audit WHERE type = 'order.created'", 1,
	'the waiting event is delivered once a subscription matches it');
$node->safe_psql('postgres', "BEGIN; SELECT outbox_publish('user.both', '{}'); COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM audit WHERE type = 'user.both'", 1,
	'an event matched by two subscriptions reaches the second');
is($node->safe_psql('postgres', "SELECT count(*) FROM effects WHERE type = 'user.both'"),
	'1', 'and the first, once');

# Paused: its deliveries wait; another subscription's go on.
$node->safe_psql('postgres', "SELECT outbox_pause_subscription('audit')");
$node->safe_psql('postgres', "BEGIN; SELECT outbox_publish('user.while_paused', '{}'); COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'user.while_paused'", 1,
	'an event matched by a paused subscription reaches the other one');
sleep 1;
is($node->safe_psql('postgres', q{
	SELECT d.subscription || ':' || d.status FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id
	 WHERE e.type = 'user.while_paused' AND d.completed_on IS NULL}),
	'audit:created', 'the paused subscription\'s delivery waits');
is($node->safe_psql('postgres', "SELECT count(*) FROM audit WHERE type = 'user.while_paused'"), '0',
	'and its handler was not called');
$node->safe_psql('postgres', "SELECT outbox_resume_subscription('audit')");
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM audit a JOIN effects f USING (event_id) WHERE a.type = 'user.while_paused'", 1,
	'after resume it reaches both subscriptions');

my $stats = $node->safe_psql('postgres',
	"SELECT database, pid, state, delivered, failed FROM outbox_worker_stats()");
# delivered counts deliveries: the events matched by both subscriptions count twice.
is($stats, "postgres|$pid|idle|12|0", 'outbox_worker_stats() shows the worker and its counters');

$node->stop;
done_testing();
