# An external consumer that claimed events and died: the relay takes its
# expired lease back (counting the attempt), so the events flow again, and
# the dead consumer can no longer complete them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

# Poll rarely: expired leases are then looked for every 5 s, and the relay's
# own claim can meet one first (below).
my $node = relay_node('lease', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
relay_pid($node, 'postgres');

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('ext.job', jsonb_build_object('n', i)) FROM generate_series(1, 3) i;
	COMMIT;
	CREATE TABLE dead_claim AS SELECT * FROM outbox_claim(10, '2 seconds', 'dead-consumer', ARRAY['ext.*']);
});
is($node->safe_psql('postgres', "SELECT count(*) FROM dead_claim"), '3', 'the consumer claimed 3 events');

wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events WHERE status = 'created' AND retry_count = 1", 3,
	'after the lease expired, the relay took the events back, counting the attempt');
like($node->safe_psql('postgres', "SELECT DISTINCT last_error FROM outbox_events"),
	qr/lease expired: not completed within 2 s by dead-consumer/, 'last_error says why');
is($node->safe_psql('postgres', "SELECT reclaimed FROM outbox_worker_stats()"), '3',
	'outbox_worker_stats() counts them as reclaimed');

my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT outbox_complete(array_agg(id), min(lease_token)) FROM dead_claim");
like($err, qr/lease token \d+ (is no longer valid|does not hold it)/, 'the dead consumer cannot complete them any more');

# Another consumer takes them now.
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_claim(10, '30 seconds', 'live', ARRAY['ext.*'])"),
	'3', 'a live consumer claims them again');

# An expired lease of a subscribed type: the relay takes it back (the attempt
# counts), from its claim or from its periodic look for expired leases,
# whichever meets it first, and delivers it with the attempt on record.
$node->safe_psql('postgres', q{
	CREATE TABLE seen (n int PRIMARY KEY, retry_count int NOT NULL);
	CREATE FUNCTION see(e outbox_events) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO public.seen VALUES ((e.payload->>'n')::int, e.retry_count) $$;
	SELECT outbox_subscribe('seen', 'relay.*', 'see');
	BEGIN;
	SELECT outbox_publish('relay.job', '{"n": 1}');
	SELECT count(*) FROM outbox_claim(1, '1 second', 'dead-consumer', ARRAY['relay.*']);
	COMMIT;
	SELECT pg_sleep(1.2);
	BEGIN;
	SELECT outbox_publish('relay.job', '{"n": 2}');
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM seen", 2, 'the relay delivered both');
is($node->safe_psql('postgres', "SELECT string_agg(n || ':' || retry_count, ',' ORDER BY n) FROM seen"), '1:1,2:0',
	'the handler saw the expired attempt counted');
is($node->safe_psql('postgres',
	"SELECT retry_count FROM outbox_events_archive WHERE payload->>'n' = '1' AND type = 'relay.job'"), '1',
	'and so does the archive');

$node->stop;
done_testing();
