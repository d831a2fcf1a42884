# A reload changes the relay's settings without a restart: switch it off and
# on, add and remove a database, change the handler timeout.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

# Retries 20 ms apart, and enough of them (the slow handler below fails every
# 100 ms until the reload raises its timeout) not to run out before the reload.
my $node = relay_node('reload', 'outbox.poll_interval' => '200ms', 'outbox.base_backoff' => '10ms',
	'outbox.max_backoff' => '20ms', 'outbox.max_retries' => '100');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', "SELECT outbox_subscribe('all', '*', 'record_effect')");
my $pid = relay_pid($node, 'postgres');

sub set_and_reload
{
	my ($setting, $value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET $setting = '$value'");
	$node->safe_psql('postgres', "SELECT pg_reload_conf()");
	return;
}

# Off: the worker stops, events wait.
set_and_reload('outbox.enabled', 'off');
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay'", 0,
	'outbox.enabled = off stops the worker');
$node->safe_psql('postgres', "BEGIN; SELECT outbox_publish('a.while_off', '{}'); COMMIT;");
sleep 1;
is($node->safe_psql('postgres', "SELECT count(*) FROM effects"), '0', 'nothing is delivered while off');

# On again: the waiting event goes.
set_and_reload('outbox.enabled', 'on');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'a.while_off'", 1,
	'outbox.enabled = on delivers the waiting event');
isnt(relay_pid($node, 'postgres'), $pid, 'by a new worker');

# A database added to outbox.databases gets a worker; removed, it loses it.
$node->safe_psql('postgres', 'CREATE DATABASE second');
setup_relay_db($node, 'second');
$node->safe_psql('second', "SELECT outbox_subscribe('all', '*', 'record_effect')");
$node->safe_psql('second', "BEGIN; SELECT outbox_publish('b.second', '{}'); COMMIT;");
set_and_reload('outbox.databases', 'postgres, second');
relay_pid($node, 'second');
wait_for_relay($node, 'second', "SELECT count(*) FROM effects WHERE type = 'b.second'", 1,
	'a database added on reload is served');
set_and_reload('outbox.databases', 'postgres');
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND datname = 'second'", 0,
	'a database removed on reload loses its worker');
is($node->safe_psql('postgres', "SELECT string_agg(database, ',') FROM outbox_worker_stats()"),
	'postgres', 'outbox_worker_stats() shows the databases served');

# The handler timeout: a slow handler is cancelled, its event retried.
set_and_reload('outbox.handler_timeout', '100ms');
$node->safe_psql('postgres', "BEGIN; SELECT outbox_publish('c.slow', '{\"sleep\": 2}'); COMMIT;");
wait_for_relay($node, 'postgres',
	"SELECT d.last_error LIKE '%canceling statement due to statement timeout%' FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id WHERE e.type = 'c.slow' AND d.attempts > 0",
	't', 'a handler slower than outbox.handler_timeout is cancelled and its event retried');
set_and_reload('outbox.handler_timeout', '10s');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects WHERE type = 'c.slow'", 1,
	'with a longer timeout (after reload) it completes');
is($node->safe_psql('postgres', "SELECT pid FROM outbox_worker_stats()"), relay_pid($node, 'postgres'),
	'the worker did not restart for these reloads');

$node->stop;
done_testing();
