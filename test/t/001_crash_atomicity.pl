# kill -9 of the postmaster right after commits, with synchronous_commit = off:
# each business row and its event are both present or both absent, and no
# event is duplicated.
#
# Two writers commit a stream of short transactions, each inserting business
# rows (orders) and publishing their events (outbox_publish, or
# outbox_publish_batch for two orders at once); a consumer claims and
# completes events meanwhile (they move to the archive). The server is killed
# at a random moment, several times; after each restart every order has
# exactly one event (in the outbox or the archive) and every event its order.
# With synchronous_commit = off, transactions the writers saw committed may be
# lost in the crash -- but then the row and its event are lost together.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use OutboxCore;
use PostgreSQL::Test::Utils;
use Test::More;

my $rounds = $ENV{OUTBOX_CRASH_ROUNDS} // 5;

my $node = core_node('crash', <<'CONF');
synchronous_commit = off
wal_writer_delay = 200ms
outbox.require_transaction = error
log_statement = none
CONF
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION outbox;
	CREATE SEQUENCE order_ids;
	CREATE TABLE orders (id bigint PRIMARY KEY, round int NOT NULL, amount int NOT NULL);
});

my $tmp = PostgreSQL::Test::Utils::tempdir;

# Each writer's script: many transactions; after each COMMIT it prints the
# ids of the orders it committed (what the application believes is durable).
sub writer_script
{
	my ($writer, $transactions) = @_;
	my $sql = "\\set ON_ERROR_STOP 1\n";
	for my $i (1 .. $transactions)
	{
		if ($i % 5 == 0)
		{
			$sql .= <<"SQL";
BEGIN;
WITH o AS (INSERT INTO orders SELECT nextval('order_ids'), :round, $i FROM generate_series(1, 2) RETURNING id)
SELECT array_agg(id) AS batch FROM o \\gset
SELECT count(*) FROM unnest(outbox_publish_batch((
    SELECT jsonb_agg(jsonb_build_object('type', 'order.created', 'payload', jsonb_build_object('order_id', x),
                                        'ordering_key', 'w$writer-$i') ORDER BY x)
      FROM unnest(:'batch'::bigint[]) x))) \\g /dev/null
COMMIT;
SELECT unnest(:'batch'::bigint[]);
SQL
		}
		else
		{
			$sql .= <<"SQL";
BEGIN;
INSERT INTO orders VALUES (nextval('order_ids'), :round, $i);
SELECT outbox_publish('order.created', jsonb_build_object('order_id', currval('order_ids'))) \\g /dev/null
COMMIT;
SELECT currval('order_ids');
SQL
		}
	}
	return $sql;
}

# The consumer: claim a batch, complete it, again and again.
my $block = <<'SQL';
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(min(lease_token), 0) AS tok
  FROM outbox_claim(20, '2 seconds', 'crash-consumer') \gset
SELECT outbox_complete(:'ids', :tok) WHERE :tok > 0 \g /dev/null
SQL
my $consumer_sql = $block x 20000;

my @writer_files = map { write_file("$tmp/writer$_.sql", writer_script($_ + 1, 20000)) } 0 .. 1;
my $consumer_file = write_file("$tmp/consumer.sql", $consumer_sql);

my $check_sql = q{
	WITH ev AS (
		SELECT id, (payload->>'order_id')::bigint AS order_id FROM outbox_events
		UNION ALL
		SELECT id, (payload->>'order_id')::bigint FROM outbox_events_archive)
	SELECT (SELECT count(*) FROM orders) || ' ' ||
	       (SELECT count(*) FROM ev) || ' ' ||
	       (SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM ev WHERE ev.order_id = o.id)) || ' ' ||
	       (SELECT count(*) FROM ev WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = ev.order_id)) || ' ' ||
	       (SELECT count(*) - count(DISTINCT order_id) FROM ev) || ' ' ||
	       (SELECT count(*) - count(DISTINCT id) FROM ev)
};

my $lost_acked_total = 0;
for my $round (1 .. $rounds)
{
	my @h = map {
		start_psql_script($node, 'postgres', $writer_files[$_], "$tmp/writer$_.r$round.out",
			"$tmp/writer$_.r$round.err", "round=$round")
	} 0 .. 1;
	my $ch = start_psql_script($node, 'postgres', $consumer_file, "$tmp/consumer.r$round.out",
		"$tmp/consumer.r$round.err");
	my $acked = sub {
		map { split /\n/, slurp_file("$tmp/writer$_.r$round.out") } 0 .. 1;
	};

	# Let commits flow, then kill the server in the middle of them.
	wait_for(30, sub { my @a = $acked->(); @a >= 200 });
	select(undef, undef, undef, 0.2 + rand(0.8));
	my $all = $round % 2 == 0;
	crash_server($node, all_processes => $all);
	$_->finish for @h, $ch;

	my @acked_now = $acked->();
	note sprintf("round %d: killed %s after %d acknowledged orders this round",
		$round, $all ? 'postmaster and all server processes' : 'the postmaster', scalar @acked_now);
	ok(@acked_now > 0, "round $round: the writers committed before the crash");

	$node->start;
	my ($orders, $events, $orphan_orders, $orphan_events, $dup_events, $dup_ids) =
	  split / /, $node->safe_psql('postgres', $check_sql);
	is($orphan_orders, 0, "round $round: every order has its event ($orders orders)");
	is($orphan_events, 0, "round $round: every event has its order ($events events)");
	is($dup_events, 0, "round $round: no order has two events");
	is($dup_ids, 0, "round $round: no event is both in the outbox and the archive");

	# Acknowledged but lost (possible with synchronous_commit = off): then
	# neither the order nor its event exists.
	my ($lost, $lost_with_event) = split /\|/, $node->safe_psql('postgres', sprintf(q{
		SELECT count(*), count(*) FILTER (WHERE EXISTS (
		           SELECT FROM outbox_events e WHERE (e.payload->>'order_id')::bigint = a))
		  FROM unnest('{%s}'::bigint[]) a WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = a)},
		join(',', @acked_now)));
	is($lost_with_event, 0, "round $round: an acknowledged order lost in the crash lost its event too");
	$lost_acked_total += $lost;
}
note "acknowledged commits lost in crashes (allowed with synchronous_commit = off): $lost_acked_total";

# The outbox works after the crashes: leases of the killed consumer expire,
# the events are reclaimed, and everything is delivered exactly once.
sleep 2;
my $drain = q{
	SELECT outbox_complete(array_agg(id), min(lease_token))
	  FROM outbox_claim(10000, '1 minute', 'final') HAVING count(*) > 0
};
ok(wait_for(60, sub {
	$node->safe_psql('postgres', $drain);
	$node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events') eq '0';
}), 'after the crashes every event is claimed and completed');
my ($orders, $archived, $distinct) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM orders), count(*), count(DISTINCT (payload->>'order_id')) FROM outbox_events_archive
});
is($archived, $orders, "every order's event was delivered ($orders orders)");
is($distinct, $orders, 'each exactly once');

$node->stop;
done_testing();
