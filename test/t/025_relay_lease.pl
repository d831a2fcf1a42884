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

my $node = relay_node('lease', 'outbox.poll_interval' => '1s');
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

$node->stop;
done_testing();
