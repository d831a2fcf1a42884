# A consumer whose session ends while its transaction holds events claimed
# with outbox_claim_xact() (terminated, a FATAL error, the connection lost) is
# a consumer that died with them, as one whose lease expires: each unsettled
# event counts a failed attempt, so that an event that kills the sessions
# handling it ends failed after 1 + outbox.max_retries attempts instead of
# coming back forever. A plain ROLLBACK hands them back uncharged.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use OutboxCore;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = core_node('xactend', "outbox.max_retries = 1\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION outbox;
	SET outbox.require_transaction = off;
	SELECT outbox_publish('job', '{"poison": true}');
	SELECT outbox_publish('job', '{"n": 2}');
});
my $tmp = PostgreSQL::Test::Utils::tempdir;

# A consumer that claims the poison (the oldest event) and settles the
# other, then hangs until it is terminated.
my $script = write_file("$tmp/consumer.sql", q{
SET application_name = 'doomed-consumer';
BEGIN;
CREATE TEMP TABLE got AS SELECT * FROM outbox_claim_xact(2);
SELECT outbox_complete(ARRAY(SELECT id FROM got WHERE NOT payload ? 'poison'), (SELECT lease_token FROM got LIMIT 1));
SELECT pg_sleep(60);
});

sub run_and_terminate
{
	my ($round) = @_;
	my $h = start_psql_script($node, 'postgres', $script, "$tmp/out$round", "$tmp/err$round");
	$node->poll_query_until('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'doomed-consumer' AND query LIKE '%pg_sleep%'",
		'1')
	  or die 'the consumer did not claim';
	$node->safe_psql('postgres',
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'doomed-consumer'");
	$h->finish;
	return;
}

run_and_terminate(1);
is( $node->safe_psql('postgres', "SELECT status || ' ' || retry_count FROM outbox_events WHERE payload ? 'poison'"),
	'created 1', 'the unsettled event counted one failed attempt and is due again');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox_events WHERE payload ? 'poison'"),
	qr/the session of doomed-consumer ended while its transaction held this event/, 'last_error says why');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_events WHERE payload ? 'n'"), '1',
	'the completion of the other event died with the transaction: it is still there');
is($node->safe_psql('postgres', "SELECT retry_count FROM outbox_events WHERE payload ? 'n'"), '0',
	'but it was settled by the consumer, so it is not charged');
ok($node->log_contains('ended holding 1 events it had claimed with outbox_claim_xact'), 'the charge is logged');

# A plain ROLLBACK is the consumer's choice: no attempt counted.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT count(*) FROM outbox_claim_xact(10);
	ROLLBACK;
});
is($node->safe_psql('postgres', "SELECT retry_count FROM outbox_events WHERE payload ? 'poison'"), '1',
	'a rollback counts no attempt');

# The second death is the last attempt (max_retries = 1): failed.
run_and_terminate(2);
is( $node->safe_psql('postgres', "SELECT status || ' ' || retry_count FROM outbox_events WHERE payload ? 'poison'"),
	'failed 2', 'after 1 + max_retries deaths the event is failed');
is($node->safe_psql('postgres', "BEGIN; SELECT count(*) FROM outbox_claim_xact(10) WHERE payload ? 'poison'; COMMIT;"),
	'0', 'and no longer handed out');

$node->stop;
done_testing();
