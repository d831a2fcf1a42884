# One subscription's handler cannot change what another owner's handler runs
# with: settings a handler changes (set_config(..., false), SET, SET LOCAL)
# are rolled back after its call, in the same batch and in later ones.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('settings', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE ROLE mallory;
	CREATE ROLE bob;
	GRANT outbox_admin TO mallory, bob;
	CREATE SCHEMA mine AUTHORIZATION mallory;
	CREATE TABLE seen (event_id uuid, who text, search_path text, work_mem text, app text);
	GRANT INSERT ON seen TO mallory, bob;
	-- mallory's handler changes session settings three ways.
	CREATE FUNCTION mallory_handler(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM set_config('search_path', 'mine, public', false);
		SET work_mem = '77MB';
		SET LOCAL application_name = 'mallory was here';
		INSERT INTO public.seen VALUES (e.id, current_user, current_setting('search_path'),
			current_setting('work_mem'), current_setting('application_name'));
	END $$;
	-- bob's handler records what it runs with.
	CREATE FUNCTION bob_handler(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO public.seen VALUES (e.id, current_user, current_setting('search_path'),
			current_setting('work_mem'), current_setting('application_name'));
	END $$;
	SET ROLE mallory;
	SELECT outbox_subscribe('a_mallory', '*', 'mallory_handler');
	RESET ROLE;
	SET ROLE bob;
	SELECT outbox_subscribe('b_bob', '*', 'bob_handler');
	RESET ROLE;
});
my $defaults = $node->safe_psql('postgres',
	"SELECT current_setting('search_path') || ' ' || current_setting('work_mem')");

# Subscriptions run in name order: mallory's handler before bob's, for each
# event of one batch.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('t', jsonb_build_object('n', i)) FROM generate_series(1, 5) i;
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive", 5, 'the first batch is delivered');
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE who = 'mallory' AND search_path = 'mine, public'"),
	'5', "mallory's own handler sees its change");
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM seen WHERE who = 'bob' AND search_path || ' ' || work_mem = '$defaults'"),
	'5', "bob's handler runs with the default search_path and work_mem in the same batch");
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE who = 'bob' AND app = 'mallory was here'"),
	'0', "mallory's SET LOCAL does not reach bob's handler");

# A later batch: nothing carried over in the worker's session.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('t', jsonb_build_object('n', i)) FROM generate_series(6, 8) i;
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive", 8, 'the second batch is delivered');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM seen WHERE who = 'bob' AND search_path || ' ' || work_mem = '$defaults'"),
	'8', "bob's handler still runs with the defaults in later batches");
is($node->safe_psql('postgres', "SELECT count(*) FROM seen WHERE who = 'mallory'"), '8',
	"mallory's handler ran once per event");

$node->stop;
done_testing();
