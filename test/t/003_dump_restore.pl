# pg_dump / pg_restore round trip of a database using outbox.
#
# The source database has events in every state: due, scheduled (delayed),
# active (leased), waiting for a retry, failed, delivered and discarded (in
# the archive), plus archive partitions created by outbox_archive_maintain().
# It is dumped in custom format and restored with pg_restore into a fresh
# cluster (where the outbox roles do not exist yet), and dumped as plain SQL
# and restored with psql into another database of the same cluster. Each
# copy has every row back exactly, the extension works on it (publish,
# claim, heartbeat, complete, fail), a lease taken before the dump is still
# honoured, and the identity and lease token sequences continue: no seq and
# no lease token is handed out twice.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use OutboxCore;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = core_node('source', "outbox.require_transaction = off\n");
$src->start;

sub sql
{
	my ($node, $db, $query) = @_;
	return $node->safe_psql($db, "SET search_path = outbox, public;\n$query");
}

$src->safe_psql('postgres', 'CREATE DATABASE shop');
sql($src, 'shop', q{
	CREATE SCHEMA outbox;
	CREATE EXTENSION outbox SCHEMA outbox;
	CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL);
});

# Events in every state. Fixed ids make the states easy to find.
sql($src, 'shop', q{
	CREATE FUNCTION ev(n int) RETURNS uuid LANGUAGE sql AS
		$$ SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;

	BEGIN;
	INSERT INTO orders SELECT n, n * 10 FROM generate_series(1, 10) n;
	SELECT outbox_publish(t, jsonb_build_object('order', n),
	                      ordering_key => CASE WHEN n IN (1, 2) THEN 'customer-7' END,
	                      headers => jsonb_build_object('trace', 'abc-' || n),
	                      id => ev(n))
	  FROM (VALUES (1, 'order.created'), (2, 'order.created'), (3, 'order.paid'), (4, 'order.paid'),
	               (5, 'order.paid'), (6, 'order.shipped'), (7, 'order.bad'), (8, 'order.retry'),
	               (9, 'order.poison'), (10, 'order.cancelled')) v(n, t);
	SELECT outbox_publish('order.reminder', '{"order": 11}', delay => '1 day', id => ev(11));
	COMMIT;

	-- delivered: 3, 4, 5
	SELECT outbox_complete(array_agg(id), min(lease_token))
	  FROM outbox_claim(10, '1 minute', 'worker-z', ARRAY['order.paid']);
	-- 1 (customer-7's first; 2 waits behind it) and 6: leased for an hour by worker-a
	SELECT count(*) FROM outbox_claim(10, '1 hour', 'worker-a', ARRAY['order.created', 'order.shipped']);
	-- 7: failed for good; 8: waits for a retry in an hour; 9: failed, then discarded
	SELECT outbox_fail(id, lease_token, 'permanent: bad address', retryable => false)
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.bad']);
	SELECT outbox_fail(id, lease_token, 'timeout talking to the broker', retry_in => '1 hour')
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.retry']);
	SELECT outbox_fail(id, lease_token, 'poison', retryable => false)
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.poison']);
	SELECT outbox_discard(ARRAY[ev(9)]);
	SELECT count(*) FROM outbox_archive_maintain('7 days', 3);
});

my $states = sql($src, 'shop',
	q{SELECT string_agg(right(id::text, 2) || ':' || status, ' ' ORDER BY seq) FROM outbox_events});
is($states, '01:active 02:created 06:active 07:failed 08:created 10:created 11:created',
	'source: events in every state');
is(sql($src, 'shop', q{SELECT string_agg(right(id::text, 2) || ':' || status, ' ' ORDER BY seq) FROM outbox_events_archive}),
	'03:completed 04:completed 05:completed 09:failed', 'source: delivered and discarded events in the archive');
my $partitions = sql($src, 'shop', q{
	SELECT count(*) FROM pg_inherits WHERE inhparent = 'outbox.outbox_events_archive'::regclass});
is($partitions, '4', 'source: the default archive partition and three daily ones');

# What must come back: every row of both tables (all columns), the
# partitions and their primary keys, the business rows.
my $snapshot_sql = q{
	SELECT e::text FROM outbox_events e ORDER BY seq;
	SELECT a::text FROM outbox_events_archive a ORDER BY id;
	SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid)
	  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	 WHERE i.inhparent = 'outbox.outbox_events_archive'::regclass ORDER BY 1;
	SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indrelid
	 WHERE i.inhparent = 'outbox.outbox_events_archive'::regclass AND x.indisprimary ORDER BY 1;
	SELECT o::text FROM orders o ORDER BY id;
};
my $before = sql($src, 'shop', $snapshot_sql);
my ($max_seq, $last_token) = split /\|/, sql($src, 'shop', q{
	SELECT greatest((SELECT max(seq) FROM outbox_events), (SELECT max(seq) FROM outbox_events_archive)),
	       (SELECT last_value FROM outbox_lease_token_seq)});
my ($worker_a_token) = sql($src, 'shop',
	q{SELECT DISTINCT lease_token FROM outbox_events WHERE lease_owner = 'worker-a'});

my $tmp = PostgreSQL::Test::Utils::tempdir;
$src->command_ok([ 'pg_dump', '-Fc', '-d', $src->connstr('shop'), '-f', "$tmp/shop.dump" ],
	'pg_dump, custom format');
$src->command_ok([ 'pg_dump', '-d', $src->connstr('shop'), '-f', "$tmp/shop.sql" ],
	'pg_dump, plain format');

# Restore 1: pg_restore into a fresh cluster.
my $dst = core_node('target', "outbox.require_transaction = off\n");
$dst->start;
$dst->safe_psql('postgres', 'CREATE DATABASE shop');
$dst->command_ok([ 'pg_restore', '--exit-on-error', '-d', $dst->connstr('shop'), "$tmp/shop.dump" ],
	'pg_restore into a fresh cluster');

# Restore 2: psql into another database of the source cluster.
$src->safe_psql('postgres', 'CREATE DATABASE shop_copy');
$src->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $src->connstr('shop_copy'),
	'-f', "$tmp/shop.sql" ], 'plain dump restored with psql into another database');

for my $copy ([ $dst, 'shop', 'pg_restore copy' ], [ $src, 'shop_copy', 'psql copy' ])
{
	my ($node, $db, $name) = @$copy;
	is(sql($node, $db, $snapshot_sql), $before,
		"$name: every event, archived event, partition (with its primary key) and order is back");
	is($node->safe_psql($db, q{SELECT count(*) FROM pg_roles WHERE rolname IN
		('outbox_publisher', 'outbox_consumer', 'outbox_admin')}), '3', "$name: the outbox roles exist");

	# New events continue the identity sequence.
	sql($node, $db, q{SELECT outbox_publish('order.created', '{"order": 12}', id => ev(12))});
	my $new_seq = sql($node, $db, q{SELECT seq FROM outbox_events WHERE id = ev(12)});
	cmp_ok($new_seq, '>', $max_seq, "$name: a new event's seq ($new_seq) follows the restored ones ($max_seq)");

	# Claim: the due events, in order; not those leased (1, 6), scheduled
	# (8, 11), failed (7), nor 2 (customer-7, behind the active 1).
	my $claimed = sql($node, $db, q{
		CREATE TABLE claimed AS SELECT * FROM outbox_claim(100, '1 minute', 'after-restore');
		SELECT string_agg(right(id::text, 2), ' ' ORDER BY id) || ' token ' || min(lease_token)
		  || ' ' || (min(lease_token) = max(lease_token))::text FROM claimed});
	my ($ids, $new_token) = $claimed =~ /^(.*) token (\d+) true$/;
	is($ids, '10 12', "$name: a claim takes the due events only");
	cmp_ok($new_token, '>', $last_token,
		"$name: the new lease token ($new_token) was never handed out before the dump (last $last_token)");
	is(sql($node, $db, q{SELECT outbox_complete(array_agg(id), min(lease_token)) FROM claimed}), '2',
		"$name: the claimed events complete");

	# The lease taken before the dump is still worker-a's.
	ok(sql($node, $db, qq{SELECT outbox_heartbeat(ARRAY[ev(1), ev(6)], $worker_a_token, '1 hour') > now()}),
		"$name: the lease taken before the dump still heartbeats");
	is(sql($node, $db, qq{SELECT outbox_complete(ARRAY[ev(1)], $worker_a_token)}), '1',
		"$name: and completes");
	is(sql($node, $db, q{SELECT string_agg(right(id::text, 2), ' ') FROM outbox_claim(10, '1 minute', 'next')}),
		'02', "$name: customer-7's next event is claimable now, in order");

	# Operations: retry the failed event; the archive routes to the restored partitions.
	is(sql($node, $db, q{SELECT outbox_retry(ARRAY[ev(7)])}), '1', "$name: a failed event is retried");
	is(sql($node, $db, q{
		INSERT INTO outbox_events_archive (id, seq, type, payload, headers, status, occurred_at, created_on,
		                                   retry_count, completed_on)
		VALUES (ev(99), 99999, 't', '{}', '{}', 'completed', now(), now(), 0, now() + interval '1 day')
		RETURNING tableoid::regclass}),
		'outbox_events_archive_p' . sql($node, $db, q{SELECT to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD')}),
		"$name: archive rows of tomorrow go to tomorrow's restored partition");
}

$src->stop;
$dst->stop;
done_testing();
