# Without shared_preload_libraries the SQL API works and nothing is
# delivered by a worker; what needs the worker says so, with a hint.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nopreload');
$node->init;
$node->append_conf('postgresql.conf', "outbox.databases = 'postgres'\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION outbox;
	CREATE FUNCTION h(e outbox_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
	SELECT outbox_subscribe('s', '*', 'h');
	BEGIN; SELECT outbox_publish('a.b', '{}'); COMMIT;
});
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'outbox%'"),
	'0', 'no relay runs');
is($node->safe_psql('postgres', "SELECT status FROM outbox_events"), 'created',
	'publishing (and its commit) works; the event waits');
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM outbox_worker_stats()');
like($err, qr/the outbox relay is not running: the library is not preloaded/, 'outbox_worker_stats() says why');
like($err, qr/HINT:  Add 'outbox' to shared_preload_libraries/, 'with a hint');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_claim(10, '30 seconds', 'sql-consumer')"), '1',
	'SQL consumers still work');

$node->stop;
done_testing();
