# An idle relay runs no transactions: with nothing in its outbox for
# consumers, it waits for a commit to wake it, for the next due time it knows
# of, or for its minute's look. After such a quiet spell, a scheduled event is
# delivered on time, and an expired lease of an external consumer is taken
# back as soon as before (within the 5 s of the reclaim's cadence).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

# The default poll interval (1 s). No autovacuum: its transactions would
# count in the database's commits.
my $node = relay_node('quiet', 'outbox.poll_interval' => '1s', 'autovacuum' => 'off');
setup_relay_db($node, 'postgres');
# The commits are read from another database: the test's own queries do not count.
$node->safe_psql('postgres', 'CREATE DATABASE observer');
$node->safe_psql('postgres', q{SELECT outbox_subscribe('jobs', 'job.*', 'record_effect')});
relay_pid($node, 'postgres');

# The commits of database postgres, once the relay's statistics are out (it
# flushes them at most once a second: a second after its last round at the
# latest).
sub commits
{
	usleep(2_500_000);
	return $node->safe_psql('observer', "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'");
}

# In one transaction: the SQL $first (more to publish; its output is $shown),
# then an event for consumers claimed with a lease of 2 s by a consumer that
# dies. Returns when it committed.
my $published = 0;
sub publish_dead_lease
{
	my ($first, $shown, $what) = @_;
	$published++;
	my $at = time;
	is($node->safe_psql('postgres', qq{
		BEGIN;
		SET LOCAL outbox.require_transaction = off;
		$first
		CREATE TEMP TABLE published_$published AS SELECT outbox_publish('ext.job', '{}');
		SELECT count(*) FROM outbox_claim(1, '2 seconds', 'dead-consumer', ARRAY['ext.*']);
		COMMIT;
	}), $shown eq '' ? '1' : "$shown\n1", $what);
	return $at;
}

# Waits until the relay took the expired lease back; the seconds since $at.
sub lease_taken_back
{
	my ($at, $what) = @_;
	wait_for_relay($node, 'postgres',
		q{SELECT count(*) FROM outbox_events WHERE type = 'ext.job' AND status = 'created' AND retry_count = 1}, 1,
		$what);
	return time - $at;
}

$node->safe_psql('postgres', q{BEGIN; SELECT outbox_publish('job.now', '{}'); COMMIT;});
wait_for_relay($node, 'postgres', 'SELECT count(*) FROM effects', 1, 'an event published is delivered at once');

# Quiet: at most its look once a minute (and the sweep with it) can fall in
# the 8 s; a relay that polls runs two or more transactions a second.
my $before = commits();
sleep 8;
my $idle = commits() - $before;
cmp_ok($idle, '<=', 1, "an idle relay committed $idle transactions in 8 s (at most its minute's look)");

# A scheduled event, published now for 6 s from now: the publish wakes the
# relay, which learns its time and sleeps until then.
$node->safe_psql('postgres', q{
	BEGIN;
	CREATE TABLE scheduled AS
		SELECT outbox_publish('job.later', '{}', deliver_at => t.at) AS id, t.at
		  FROM (SELECT clock_timestamp() + interval '6 seconds' AS at) t;
	COMMIT;
});
$before = commits();
sleep 2;
$idle = commits() - $before;
cmp_ok($idle, '<=', 1, "waiting for a scheduled event, the relay committed $idle transactions in 2 s");
wait_for_relay($node, 'postgres', 'SELECT count(*) FROM effects', 2, 'the scheduled event is delivered');
my $late = $node->safe_psql('postgres', q{
	SELECT round(extract(epoch FROM f.handled_at - s.at)::numeric, 3) FROM effects f JOIN scheduled s ON s.id = f.event_id});
cmp_ok($late, '>=', 0, "not before its time ($late s after)");
cmp_ok($late, '<', 1, "and on time ($late s after its time, the relay quiet meanwhile)");

# Quiet again. An event for consumers (no subscription matches it), claimed
# at once with a lease of 2 s by a consumer that then dies.
$before = commits();
sleep 3;
$idle = commits() - $before;
cmp_ok($idle, '<=', 1, "quiet again: $idle transactions in 3 s");
$node->safe_psql('postgres', q{BEGIN; SELECT outbox_publish('ext.job', '{}'); COMMIT;});
my $claimed_at = time;
is($node->safe_psql('postgres', q{SELECT count(*) FROM outbox_claim(1, '2 seconds', 'dead-consumer', ARRAY['ext.*'])}),
	'1', 'a consumer claims it with a lease of 2 s');
my $took = lease_taken_back($claimed_at, 'the relay takes the expired lease back');
cmp_ok($took, '<', 2 + 5 + 2, sprintf('within the reclaim cadence after the lease expired (%.1f s after the claim)', $took));
like($node->safe_psql('postgres', q{SELECT last_error FROM outbox_events WHERE type = 'ext.job'}),
	qr/lease expired: not completed within 2 s by dead-consumer/, 'counted as an expired lease');

# A live consumer completes it: the outbox is empty again. Then an event
# published and claimed in one transaction, by a consumer that dies: when
# the relay looks, it sees only the lease, and its end.
$node->safe_psql('postgres', q{
	SELECT outbox_complete(array_agg(id), min(lease_token)) FROM outbox_claim(1, '30 seconds', 'live', ARRAY['ext.*']);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events'), '0', 'the outbox is empty');
$before = commits();
sleep 3;
$idle = commits() - $before;
cmp_ok($idle, '<=', 1, "quiet again: $idle transactions in 3 s");
$claimed_at = publish_dead_lease('', '', 'an event published and claimed in one transaction');
$took = lease_taken_back($claimed_at, 'its expired lease is taken back');
cmp_ok($took, '<', 2 + 5 + 2, sprintf('as soon (%.1f s after the claim)', $took));

# The event waits for consumers: the relay looks at the poll interval again
# (a consumer may take it with a lease at any time).
$before = commits();
sleep 3;
my $watching = commits() - $before;
cmp_ok($watching, '>=', 2,
	"with an event waiting for consumers, the relay looks at its poll interval ($watching transactions in 3 s)");

# Quiet again, then a long drain: 300 events of one ordering key (one per
# batch, each batch followed by the next at once; the handler takes 30 ms),
# and in the same transaction an event for consumers claimed with a lease of
# 2 s by a consumer that dies. Batches that follow each other at once keep
# the relay from being quiet: its upkeep takes the lease back during the
# drain (it waited for the drain's end when a quiet relay stayed quiet
# through it).
$node->safe_psql('postgres', q{
	SELECT outbox_complete(array_agg(id), min(lease_token)) FROM outbox_claim(1, '30 seconds', 'live', ARRAY['ext.*']);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events'), '0', 'the outbox is empty again');
sleep 3;
my $keyed = 300;
my $effects_before = $node->safe_psql('postgres', 'SELECT count(*) FROM effects');
$claimed_at = publish_dead_lease(
	"SELECT count(outbox_publish('job.keyed', jsonb_build_object('i', i, 'sleep', 0.03), ordering_key => 'one'))
	   FROM generate_series(1, $keyed) i;", $keyed,
	"$keyed events of one key and, claimed with a lease of 2 s, an event for consumers");
$took = lease_taken_back($claimed_at, 'the expired lease is taken back');
my $drained = $node->safe_psql('postgres', 'SELECT count(*) FROM effects') - $effects_before;
cmp_ok($took, '<', 2 + 5 + 2, sprintf('within the reclaim cadence (%.1f s after the claim)', $took));
cmp_ok($drained, '<', $keyed, "while the drain went on ($drained of $keyed events of the key delivered by then)");
wait_for_relay($node, 'postgres', 'SELECT count(*) FROM effects', $effects_before + $keyed,
	'the drain delivers every event of the key');

$node->stop;
done_testing();
