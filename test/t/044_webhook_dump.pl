# pg_dump carries endpoints and webhook subscriptions, never their secrets
# (outbox_endpoint_secrets is not a configuration table, on purpose). After
# a restore the endpoint's deliveries wait, the sink worker says why, and once
# outbox_rotate_endpoint_secret() gives it a new secret they are delivered,
# signed with it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $node = webhook_node('whdump', 'outbox.databases' => 'postgres,copy');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

my $secret = $node->safe_psql('postgres',
	"SELECT outbox_create_endpoint('hook', '" . receiver_url($r, '/hook') . "', headers => '{\"x-team\": \"billing\"}')");
$node->safe_psql('postgres', q{
	SELECT outbox_subscribe_webhook('to_hook', 'order.*', 'hook');
	SELECT outbox_pause_subscription('to_hook');
	BEGIN; SELECT outbox_publish('order.created', '{"n": 1}'); COMMIT;
});

my $tmp = PostgreSQL::Test::Utils::tempdir;
$node->command_ok([ 'pg_dump', '-d', $node->connstr('postgres'), '-f', "$tmp/db.sql" ], 'pg_dump');
my $dump = slurp_file("$tmp/db.sql");
my ($key) = $secret =~ /^whsec_(.+)$/;
unlike($dump, qr/\Q$key\E/, 'the dump does not contain the signing secret');
like($dump, qr/x-team/, 'it contains the endpoint (its static headers)');

$node->safe_psql('postgres', 'CREATE DATABASE copy');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('copy'), '-f', "$tmp/db.sql" ],
	'restored into another database');
is($node->safe_psql('copy', q{SELECT name || ' ' || (headers->>'x-team') FROM outbox_endpoints}), 'hook billing',
	'the endpoint is back');
is($node->safe_psql('copy', q{SELECT count(*) FROM outbox_endpoint_secrets}), '0', 'without a secret');
is($node->safe_psql('copy', q{SELECT sink || ' ' || endpoint || ' ' || paused FROM outbox_subscriptions}),
	'http hook true', 'the webhook subscription is back (paused, as it was)');

# Resumed without a secret: nothing is sent, and the sink says why.
my $log_start = -s $node->logfile;
$node->safe_psql('copy', q{SELECT outbox_resume_subscription('to_hook')});
ok(wait_until(30, sub { slurp_file($node->logfile, $log_start) =~ /endpoint "hook" has no signing secret/ }),
	'the sink worker says the endpoint has no signing secret');
is(receiver_stats($r, '/hook')->{received}, 0, 'nothing was sent');
is($node->safe_psql('copy', q{SELECT count(*) FROM outbox_deliveries WHERE status = 'created'}), '1',
	'the delivery waits');

# A new secret: delivered, signed with it.
my $new = $node->safe_psql('copy', q{SELECT outbox_rotate_endpoint_secret('hook')});
receiver_config($r, '/hook', { secrets => [$new] });
ok(wait_until(30, sub { receiver_stats($r, '/hook')->{received} >= 1 }), 'after a rotation it is delivered');
is(receiver_stats($r, '/hook')->{bad_signatures}, 0, 'signed with the new secret');

stop_receiver($r);
$node->stop;
done_testing();
