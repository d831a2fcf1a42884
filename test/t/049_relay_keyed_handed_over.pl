# Handed-over deliveries of one ordering key (an event that also goes to a
# paused subscription, or to an endpoint, is handed over, not delivered
# directly) are delivered one after the other as fast as the relay can: the
# claim takes one delivery per key, and the relay claims again at once after
# a batch that made a keyed one. Before, it waited for the next poll, or for
# its upkeep (every 5 s at most), between two events of a key: 65 s for these
# 40 events, 0.2 s now. The poll is 10 min here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('keyed', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
sub sql { return $node->safe_psql('postgres', "SET outbox.require_transaction = off; $_[0]"); }

sql(q{
	SELECT outbox_subscribe('handler', 'k.*', 'record_effect');
	CREATE FUNCTION noop(e outbox_events) RETURNS void LANGUAGE sql AS $$ SELECT $$;
	SELECT outbox_subscribe('later', 'k.*', 'noop');
	SELECT outbox_pause_subscription('later');
});
my $t0 = time;
sql("BEGIN; SELECT count(outbox_publish('k.event', jsonb_build_object('i', i), ordering_key => 'k' || (i % 2)))
     FROM generate_series(1, 40) i; COMMIT;");
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects", 40,
	'the 40 events of two keys reached the handler');
my $took = time - $t0;
ok($took < 20, sprintf('in %.1f s, not a wait per event of a key (it took 65 s before)', $took));
is(sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'handler'"), '40',
	'they were handed over (the paused subscription has theirs waiting), not delivered directly');
is(sql("SELECT count(*) FROM (SELECT (e.payload->>'i')::int AS i, x.handled_at,
          lag(x.handled_at) OVER (PARTITION BY (e.payload->>'i')::int % 2 ORDER BY (e.payload->>'i')::int) AS before
          FROM effects x JOIN outbox_events e ON e.id = x.event_id) s WHERE before > handled_at"), '0',
	'in publish order per key');

$node->stop;
done_testing();
