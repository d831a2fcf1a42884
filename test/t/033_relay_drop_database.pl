# The relay gives way to DDL on what it serves: a plain DROP DATABASE of a
# served database succeeds while the relay delivers there (the worker leaves,
# and comes back for a database created again under that name), and DROP
# EXTENSION outbox CASCADE during delivery neither deadlocks nor logs anything
# alarming.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('dropdb', 'outbox.databases' => 'postgres,shop', 'outbox.poll_interval' => '1s');

sub setup_busy
{
	my ($db) = @_;
	$node->safe_psql($db, q{
		CREATE EXTENSION outbox;
		CREATE TABLE IF NOT EXISTS effects (event_id uuid PRIMARY KEY);
		CREATE FUNCTION slow(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_sleep(0.005);
			INSERT INTO public.effects VALUES (e.id);
		END $$;
		SELECT outbox_subscribe('slow', '*', 'slow');
		BEGIN;
		SELECT count(outbox_publish('load', jsonb_build_object('i', i))) FROM generate_series(1, 2000) i;
		COMMIT;
	});
	$node->poll_query_until($db, "SELECT count(*) > 20 FROM effects") or die "no delivery in $db";
	return;
}

# DROP DATABASE while its relay delivers.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
setup_busy('shop');
my $log_start = -s $node->logfile;
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE shop');
is($rc, 0, 'a plain DROP DATABASE of a served database succeeds during delivery');
unlike($err, qr/being accessed by other users/, 'it was not blocked by the relay');
like(slurp_file($node->logfile, $log_start), qr/outbox relay: leaving database "shop": it is being dropped/,
	'the relay said it left');

# Created again under the same name: served again.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql('shop', q{
	CREATE EXTENSION outbox;
	CREATE TABLE effects (event_id uuid PRIMARY KEY);
	CREATE FUNCTION quick(e outbox_events) RETURNS void LANGUAGE sql AS $$ INSERT INTO public.effects VALUES (e.id) $$;
	SELECT outbox_subscribe('quick', '*', 'quick');
	BEGIN; SELECT outbox_publish('again', '{}'); COMMIT;
});
wait_for_relay($node, 'shop', "SELECT count(*) FROM effects", 1,
	'a database created again under that name is served again');

# DROP EXTENSION outbox CASCADE during delivery, several rounds.
$log_start = -s $node->logfile;
for my $round (1 .. 4)
{
	setup_busy('postgres');
	my ($rc, $out, $err) = $node->psql('postgres', 'DROP EXTENSION outbox CASCADE');
	is($rc, 0, "round $round: DROP EXTENSION outbox CASCADE during delivery succeeds");
	unlike($err, qr/deadlock/, "round $round: no deadlock");
	$node->safe_psql('postgres', 'DROP TABLE effects');
}
my $log = slurp_file($node->logfile, $log_start);
unlike($log, qr/deadlock detected/, 'the relay never deadlocked with the DROP');
unlike($log, qr/\b(ERROR|FATAL|PANIC)\b/, 'nor logged an error');
like($log, qr/extension "outbox" is not installed in database "postgres": waiting for CREATE EXTENSION/,
	'it says plainly that it waits for the extension');

$node->stop;
done_testing();
