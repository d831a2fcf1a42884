# One configuration serves two databases. A listed database without the
# extension is skipped quietly and served once CREATE EXTENSION runs.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('twodb', 'outbox.databases' => 'east, west', 'outbox.poll_interval' => '10min');
$node->safe_psql('postgres', 'CREATE DATABASE east');
$node->safe_psql('postgres', 'CREATE DATABASE west');
# The launcher looks for missing databases again every 10 seconds, or at a reload.
$node->reload;
relay_pid($node, 'east');
relay_pid($node, 'west');

setup_relay_db($node, 'east');
$node->safe_psql('east', "SELECT outbox_subscribe('all', '*', 'record_effect')");
$node->safe_psql('east', "BEGIN; SELECT outbox_publish('e.one', '{}'); COMMIT;");
wait_for_relay($node, 'east', "SELECT count(*) FROM effects", 1, 'east delivers');
is($node->safe_psql('east', "SELECT state FROM outbox_worker_stats() WHERE database = 'west'"),
	'waiting for CREATE EXTENSION outbox', 'west, without the extension, waits quietly');
ok(!$node->log_contains('ERROR'), 'no error in the log for the database without the extension');

setup_relay_db($node, 'west');
$node->safe_psql('west', "SELECT outbox_subscribe('all', '*', 'record_effect')");
$node->safe_psql('west', "BEGIN; SELECT outbox_publish('w.one', '{}'); SELECT outbox_publish('w.two', '{}'); COMMIT;");
wait_for_relay($node, 'west', "SELECT count(*) FROM effects", 2, 'west delivers once the extension exists');
is($node->safe_psql('east', "SELECT string_agg(type, ',') FROM effects"), 'e.one',
	'each database gets its own events only');
is( $node->safe_psql('west',
		"SELECT string_agg(database || ':' || delivered, ',' ORDER BY database) FROM outbox_worker_stats()"),
	'east:1,west:2', 'counters per database');

$node->stop;
done_testing();
