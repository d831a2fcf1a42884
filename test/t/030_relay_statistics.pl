# The relay reports its table statistics: its deletes from outbox_events and
# inserts into the archive reach pg_stat_user_tables, which autovacuum and
# analyze decide on.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('stats', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{SELECT outbox_subscribe('all', '*', 'record_effect')});
my $n = 300;
$node->safe_psql('postgres', qq{
	BEGIN;
	SELECT count(outbox_publish('t', jsonb_build_object('n', i))) FROM generate_series(1, $n) i;
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events", 0, 'the relay delivers every event');

# Statistics are flushed at most once a second, and before the worker sleeps
# (within PostgreSQL's idle interval of 10 s).
ok( $node->poll_query_until('postgres', qq{
		SELECT n_tup_del >= $n FROM pg_stat_user_tables WHERE relname = 'outbox_events'}),
	"the relay's deletes from outbox_events are counted in pg_stat_user_tables");
ok( $node->poll_query_until('postgres', qq{
		SELECT sum(n_tup_ins) >= $n FROM pg_stat_user_tables WHERE relname LIKE 'outbox_events_archive%'}),
	'its inserts into the archive are counted');
ok( $node->poll_query_until('postgres', qq{
		SELECT n_tup_ins >= $n FROM pg_stat_user_tables WHERE relname = 'effects'}),
	"the handlers' writes are counted");
ok( $node->poll_query_until('postgres', qq{
		SELECT n_dead_tup >= $n OR autovacuum_count > 0 FROM pg_stat_user_tables WHERE relname = 'outbox_events'}),
	'autovacuum sees the dead rows it must clean (or already cleaned them)');

$node->stop;
done_testing();
