# The relay's settings where a value can be wrong or is per database:
# - outbox.role set to a value no role can have, at startup: no worker starts
#   (it must not fall back to the bootstrap superuser), and the launcher says so;
# - outbox.base_backoff above outbox.max_backoff: taken, capped, and reported
#   once by the postmaster at start and by the launcher when a reload makes it so;
# - outbox.relay_batch_size per database (ALTER DATABASE ... SET).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('settings', 'outbox.role' => 'public', 'outbox.base_backoff' => '1h',
	'outbox.max_backoff' => '10s', 'outbox.poll_interval' => '100ms');
setup_relay_db($node, 'postgres');

# No role can be called public: the launcher finds none and starts no worker.
ok( $node->wait_for_log(qr/outbox launcher: not found: role public/),
	'outbox.role = public at startup: the launcher reports it');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'outbox relay'"),
	'0', 'and starts no relay worker (it does not fall back to the bootstrap superuser)');

# (force_parallel_mode is debug_parallel_query from PostgreSQL 16 on)
my $parallel_mode = $node->safe_psql('postgres', 'SHOW server_version_num') >= 160000
	? 'debug_parallel_query' : 'force_parallel_mode';
# The value stays what the postmaster let through, and nothing else minds it:
# a parallel query (its workers take the leader's settings) runs.
is( $node->safe_psql('postgres',
		"SET $parallel_mode = on; SET parallel_setup_cost = 0; SELECT count(*) FROM effects"),
	'0', 'a parallel query runs while outbox.role is public');

my $warning = qr/outbox\.base_backoff \(3600000 ms\) is above outbox\.max_backoff \(10000 ms\)/;
my $log = slurp_file($node->logfile);
my $count = () = $log =~ /$warning/g;
is($count, 1, 'a base backoff above the maximum is reported once at start');
is($node->safe_psql('postgres', 'SHOW outbox.base_backoff'), '1h', 'and taken (every wait is capped)');

# Right again on reload, then wrong again: the launcher says so once.
$node->safe_psql('postgres',
	"ALTER SYSTEM SET outbox.role = ''; ALTER SYSTEM SET outbox.base_backoff = '1s'; SELECT pg_reload_conf();");
relay_pid($node, 'postgres');
$node->safe_psql('postgres', "ALTER SYSTEM SET outbox.base_backoff = '1h'; SELECT pg_reload_conf();");
my $offset = length($log);
ok($node->wait_for_log($warning, $offset), 'the launcher reports it when a reload makes it so');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$node->poll_query_until('postgres', 'SELECT pg_sleep(0.5) IS NOT NULL') or die;
$log = slurp_file($node->logfile);
$count = () = substr($log, $offset) =~ /$warning/g;
is($count, 1, 'once, not at every reload or round');

# outbox.relay_batch_size per database: 30 events in batches of 10.
$node->safe_psql('postgres', q{
	ALTER DATABASE postgres SET outbox.relay_batch_size = 10;
	SELECT outbox_subscribe('all', '*', 'record_effect');
});
my $pid = relay_pid($node, 'postgres');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND pid <> $pid")
  or die 'the relay did not come back';
my $before = $node->safe_psql('postgres', 'SELECT batches FROM outbox_worker_stats()');
$node->safe_psql('postgres',
	q{SELECT outbox_publish_batch((SELECT jsonb_agg(jsonb_build_object('type', 'load.x', 'payload', '{}'::jsonb))
	                               FROM generate_series(1, 30)))});
wait_for_relay($node, 'postgres', 'SELECT count(*) FROM effects', 30, 'the 30 events are delivered');
my $batches = $node->safe_psql('postgres', 'SELECT batches FROM outbox_worker_stats()') - $before;
ok($batches >= 3, "in batches of at most 10 ($batches batches)");

$node->stop;
done_testing();
