# What the relay logs about a lasting condition is one clear line, repeated at
# most every few minutes, with counts of the rest: fewer worker slots than
# databases, more databases than outbox.max_databases, thousands of events
# that fail for good.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('logvolume', 'outbox.databases' => 'd1,d2,d3,d4,d5,d6', 'outbox.max_databases' => '4',
	'max_worker_processes' => '4', 'outbox.max_retries' => '0', 'outbox.poll_interval' => '10min');
$node->safe_psql('postgres', "CREATE DATABASE d$_") for 1 .. 6;
setup_relay_db($node, 'd1');
$node->safe_psql('d1', q{
	SELECT outbox_subscribe('all', '*', 'record_effect');
	BEGIN;
	SELECT count(outbox_publish('bad', '{"poison": "x"}')) FROM generate_series(1, 500);
	COMMIT;
});
wait_for_relay($node, 'd1', "SELECT count(*) FROM deliveries WHERE status = 'failed'", 500,
	'500 deliveries fail for good');
sleep 12;    # the launcher tries again every second for databases without a worker

my $log = slurp_file($node->logfile);
my $no_slot = () = $log =~ /no background worker slot free for the relay/g;
is($no_slot, 1, 'one line about too few worker slots, not one a second per database');
like($log, qr/Raise max_worker_processes/, 'it says what to do');
my $too_many = () = $log =~ /not serving databases d5, d6: outbox.max_databases \(4\) are served already/g;
is($too_many, 1, 'one line names the databases past outbox.max_databases');
unlike($log, qr/not found: [^\n]*max_databases/, 'which exist, and are not called "not found"');
my $final = () = $log =~ /failed for good/g;
ok($final >= 1 && $final <= 2, "final failures are logged once, then counted ($final lines for 500)");
is($node->safe_psql('d1', 'SELECT failed FROM outbox_worker_stats() WHERE database = current_database()'), '500',
	'outbox_worker_stats() counts them all');

$node->stop;
done_testing();
