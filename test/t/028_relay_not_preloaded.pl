# Without shared_preload_libraries the SQL API works and nothing is
# delivered by a worker; what needs the worker (or its shared memory) says
# so, with a hint.
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
# outbox_metrics() shows the states (from the tables) without counters (shared memory).
is($node->safe_psql('postgres', "SELECT kind || ' ' || coalesce(name, '-') || ' ' || in_flight || ' ' || delivered_total
     || ' ' || (counters_since IS NULL) FROM outbox_metrics() ORDER BY kind, name"),
	"consumer sql-consumer 1 0 true\nsubscription s 0 0 true\ntotal - 1 0 true",
	'outbox_metrics() shows the states, with no counters');
($ret, $out, $err) = $node->psql('postgres', 'SELECT outbox_metrics_reset()');
like($err, qr/outbox metrics need the library preloaded/, 'outbox_metrics_reset() says why');

$node->stop;
done_testing();
