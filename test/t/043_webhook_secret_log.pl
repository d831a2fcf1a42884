# Webhook secrets never leak: with every statement logged (log_statement =
# all) and the statement of every message from INFO up logged with it
# (log_min_error_statement = info), creating an endpoint, rotating its
# secret, delivering (some of it failing first) and provoking errors leave
# neither a returned secret nor its base64 part (after whsec_) in the server
# log, in pg_stat_activity (sampled while the sink delivers) or in the
# readable tables and views. The secrets are only ever compared in Perl:
# no statement of this test carries one.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $node = webhook_node('whsecretlog',
	'log_statement' => 'all',
	'log_min_error_statement' => 'info',
	'log_min_messages' => 'info',
	'outbox.max_retries' => '100');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

my @secrets;
my @activity;    # pg_stat_activity rows seen, as text

sub sample_activity
{
	push @activity, sql("SELECT a::text FROM pg_stat_activity a");
	return;
}

# Created and rotated in one session that stays open, so its last statement
# stays in pg_stat_activity while it is sampled.
my $bg = $node->background_psql('postgres');
push @secrets, $bg->query_safe("SELECT outbox_create_endpoint('hook', '" . receiver_url($r, '/hook') . "')");
sample_activity();
push @secrets, $bg->query_safe("SELECT outbox_rotate_endpoint_secret('hook')");
sample_activity();
push @secrets, $bg->query_safe("SELECT outbox_create_endpoint('flaky', '" . receiver_url($r, '/flaky') . "')");
push @secrets, $bg->query_safe("SELECT outbox_rotate_endpoint_secret('flaky', grace => '1 hour')");
sample_activity();
is(scalar(grep { /^whsec_[A-Za-z0-9+\/]{16,}=*$/ } @secrets), 4, 'four secrets returned (two created, two rotated)');

receiver_config($r, '/hook', { secrets => [ $secrets[1] ] });
receiver_config($r, '/flaky', { secrets => [ $secrets[2] ], mode => 'status', status => 500 });
sql("SELECT outbox_subscribe_webhook('to_hook', 'sec.*', 'hook')");
sql("SELECT outbox_subscribe_webhook('to_flaky', 'sec.*', 'flaky')");
sql("BEGIN; SELECT count(outbox_publish('sec.x', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");

# Sample pg_stat_activity while the sink delivers and retries.
my $deadline = time + 3;
while (time < $deadline)
{
	sample_activity();
	usleep(50_000);
}
receiver_config($r, '/flaky', { mode => 'ok', status => 200 });
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_events_archive WHERE type = 'sec.x'
	  AND deliveries->'to_hook'->>'status' = 'completed' AND deliveries->'to_flaky'->>'status' = 'completed'",
	5, 'the five events are delivered to both endpoints');
is(receiver_stats($r, '/hook')->{bad_signatures}, 0, 'signed with the rotated secret');
cmp_ok(receiver_stats($r, '/flaky')->{received}, '>', 5, 'the second endpoint failed first');
sample_activity();

# Errors: each logs its statement (log_min_error_statement).
for my $bad ("SELECT outbox_alter_endpoint('hook', url => 'ftp://127.0.0.1/x')",
	"SELECT outbox_alter_endpoint('hook', url => 'http://user:pw\@127.0.0.1/x')",
	"SELECT outbox_rotate_endpoint_secret('nosuch')",
	"SELECT outbox_drop_endpoint('hook')")
{
	isnt(sqlstate_of($node, 'postgres', $bad), '', "refused: $bad");
}
# A negative grace: refused, or a secret returned (then checked too).
my ($maybe, $maybe_err) = ('', '');
$node->psql('postgres', "SELECT outbox_rotate_endpoint_secret('hook', grace => '-1 hour')",
	stdout => \$maybe, stderr => \$maybe_err);
push @secrets, $maybe if $maybe =~ /^whsec_\S+$/;
note($maybe =~ /^whsec_/ ? "a negative grace is accepted" : "a negative grace is refused");
sample_activity();
$bg->quit;

# The readable state: tables, views and functions outbox_admin sees.
my $readable = sql(q{
	SELECT e::text FROM outbox_endpoints e
	UNION ALL SELECT s::text FROM outbox_endpoint_stats() s
	UNION ALL SELECT s::text FROM outbox_subscriptions s
	UNION ALL SELECT a::text FROM outbox_events_archive a});

$node->stop;    # the log is complete
my $log = slurp_file($node->logfile);
ok(length($log) > 0 && $log =~ /outbox_rotate_endpoint_secret/, 'the log has the statements (log_statement = all)');
like($log, qr/ftp:\/\/127\.0\.0\.1\/x/, 'and the failing statement');

my $activity = join "\n", @activity;
note(sprintf('%d pg_stat_activity samples, %d log bytes', scalar(@activity), length($log)));
for my $i (0 .. $#secrets)
{
	my $s = $secrets[$i];
	(my $b64 = $s) =~ s/^whsec_//;
	my $n = $i + 1;
	ok(index($log, $s) < 0 && index($log, $b64) < 0, "secret $n is not in the server log, nor its base64 part");
	ok(index($activity, $b64) < 0, "secret $n is not in pg_stat_activity");
	ok(index($readable, $b64) < 0, "secret $n is not in outbox_endpoints, the stats, subscriptions or archive");
}
unlike($log, qr/whsec_[A-Za-z0-9+\/]{16,}/, 'no whsec_ secret at all in the log');

stop_receiver($r);
done_testing();
