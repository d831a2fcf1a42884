# A failed attempt's retry runs when it is scheduled, not at the next upkeep
# tick: the worker's sleep ends at the retry time the failure just wrote,
# whatever outbox.poll_interval is.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('retrytime', 'outbox.poll_interval' => '10min', 'outbox.base_backoff' => '3s',
	'outbox.max_backoff' => '3s');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE SEQUENCE calls;
	CREATE TABLE retries (event_id uuid, scheduled timestamptz, started timestamptz);
	-- Each event fails on its first attempt; the retry records when it was
	-- due (the row it gets) and when it ran.
	CREATE FUNCTION fail_once(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF e.retry_count = 0 THEN
			RAISE EXCEPTION 'first attempt fails';
		END IF;
		INSERT INTO public.retries VALUES (e.id, e.next_retry_at, clock_timestamp());
	END $$;
	SELECT outbox_subscribe('fail_once', '*', 'fail_once');
});
for my $i (1 .. 4)
{
	$node->safe_psql('postgres', q{BEGIN; SELECT outbox_publish('t', '{}'); COMMIT;});
	$node->poll_query_until('postgres', 'SELECT count(*) FROM retries', $i) or die 'no retry';
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM retries WHERE scheduled IS NOT NULL'), '4',
	'each event was retried once, at a scheduled time');
my $late = $node->safe_psql('postgres',
	"SELECT round(max(extract(epoch FROM started - scheduled))::numeric, 3) FROM retries");
cmp_ok($late, '<', 0.75, "retries start on time (latest: $late s after schedule), not at an upkeep tick");
cmp_ok($node->safe_psql('postgres',
	"SELECT round(min(extract(epoch FROM started - scheduled))::numeric, 3) FROM retries"), '>=', 0,
	'and never before their time');

$node->stop;
done_testing();
