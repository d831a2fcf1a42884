# Shared helpers of the relay's TAP tests.
package OutboxTest;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Exporter 'import';

our @EXPORT = qw(relay_node setup_relay_db relay_pid wait_for_relay kill_cluster_9);

# A node with the relay preloaded, serving the given databases.
sub relay_node
{
	my ($name, %conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$conf{'outbox.databases'} //= 'postgres';
	my $extra = join '', map { "$_ = '$conf{$_}'\n" } sort keys %conf;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'outbox'\nmax_worker_processes = 16\n" . $extra);
	$node->start;
	return $node;
}

# The extension, a table of handler effects (one row per event: the unique
# key makes a second effect of one event an error), and a handler that fails
# on a payload with "poison" and sleeps on one with "sleep".
sub setup_relay_db
{
	my ($node, $db) = @_;
	$node->safe_psql($db, q{
		CREATE EXTENSION outbox;
		SET outbox.require_transaction = off;
		CREATE TABLE effects (
			event_id uuid PRIMARY KEY,
			type text NOT NULL,
			by_role text NOT NULL DEFAULT current_user,
			handled_at timestamptz NOT NULL DEFAULT clock_timestamp());
		CREATE FUNCTION record_effect(e outbox_events) RETURNS void
		LANGUAGE plpgsql AS $$
		BEGIN
			IF e.payload ? 'poison' THEN
				RAISE EXCEPTION 'poison event %', e.payload->>'poison';
			END IF;
			IF e.payload ? 'sleep' THEN
				PERFORM pg_sleep((e.payload->>'sleep')::float8);
			END IF;
			INSERT INTO public.effects (event_id, type) VALUES (e.id, e.type);
		END $$;
		-- The deliveries not settled yet, with their event's type and payload.
		CREATE VIEW deliveries AS
			SELECT e.type, e.payload, d.* FROM outbox_deliveries d JOIN outbox_events e ON e.id = d.event_id;
	});
	return;
}

# The pid of the relay worker of a database (waits until it runs).
sub relay_pid
{
	my ($node, $db) = @_;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND datname = '$db'")
	  or die "no relay worker for database $db";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox relay' AND datname = '$db'");
}

# Wait until a query returns the expected value; fail the test otherwise.
sub wait_for_relay
{
	my ($node, $db, $query, $expected, $what) = @_;
	ok($node->poll_query_until($db, $query, $expected), $what);
	return;
}

# kill -9 of the postmaster and of every process it started, as a power
# loss would; the node can then be started again.
sub kill_cluster_9
{
	my ($node) = @_;
	my $pm = $node->{_pid};
	my @children = split /\s+/, `pgrep -P $pm`;
	kill 'KILL', $pm, grep { /^\d+$/ } @children;
	$node->{_pid} = undef;
	# Wait until they are all gone (shared memory is detached).
	for my $i (1 .. 100)
	{
		last unless grep { kill 0, $_ } grep { /^\d+$/ } ($pm, @children);
		usleep(50_000);
	}
	return;
}

1;
