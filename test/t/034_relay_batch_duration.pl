# A relay batch commits after outbox.max_batch_duration, checked between
# events: it never holds its row locks and the xmin horizon (which keeps vacuum
# from cleaning outbox_events) for batch_size x handler time. The events it did
# not reach are claimed again at once, no attempt counted.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('budget', 'outbox.max_batch_duration' => '200ms', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{SELECT outbox_subscribe('all', '*', 'record_effect')});
# 60 events of 50 ms each: 3 s of handler time, one batch (batch_size 50) without a budget.
$node->safe_psql('postgres', q{
	BEGIN;
	SELECT count(outbox_publish('slow', '{"sleep": 0.05}')) FROM generate_series(1, 60);
	COMMIT;
});
my $longest = 0;
for my $i (1 .. 400)
{
	my $age = $node->safe_psql('postgres', q{
		SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)
		  FROM pg_stat_activity WHERE backend_type = 'outbox relay'});
	$longest = $age if $age > $longest;
	last if $node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events') eq '0';
	usleep(20_000);
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM effects'), '60', 'every event is delivered');
cmp_ok($longest, '<', 1.5, "no relay transaction lasted much past the budget (longest seen: $longest s)");
cmp_ok($node->safe_psql('postgres', 'SELECT batches FROM outbox_worker_stats()'), '>=', 6,
	'the work was split into batches of about 200 ms');
is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events_archive WHERE retry_count > 0'), '0',
	'events left for the next batch were not charged an attempt');

$node->stop;
done_testing();
