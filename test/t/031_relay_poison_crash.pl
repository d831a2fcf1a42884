# A poison event whose handler ends the relay's own process (here
# pg_terminate_backend(pg_backend_pid()); a FATAL error or a crash of the
# process does the same) is charged a failed attempt each time, durably, so it
# ends failed after 1 + outbox.max_retries attempts; its neighbours (published
# before and after it, in the same transaction) are delivered; the worker that
# keeps dying is restarted with a growing delay. A kill -9 of the relay in a
# handler (a crash restart of the cluster) is charged the same way.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('poisoncrash', 'outbox.max_retries' => '2', 'outbox.base_backoff' => '20ms',
	'outbox.max_backoff' => '100ms', 'outbox.poll_interval' => '10min', 'restart_after_crash' => 'on');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE SEQUENCE kills;
	CREATE SEQUENCE hangs;
	CREATE TABLE release_hang ();
	CREATE FUNCTION killer(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF e.payload ? 'kill' THEN
			PERFORM nextval('public.kills');
			PERFORM pg_terminate_backend(pg_backend_pid());
			PERFORM pg_sleep(5);  -- the termination arrives at the next interrupt check
		END IF;
		IF e.payload ? 'hang' AND NOT EXISTS (SELECT FROM public.release_hang) THEN
			PERFORM nextval('public.hangs');  -- seen outside the batch's transaction
			PERFORM pg_sleep(60);
		END IF;
		PERFORM public.record_effect(e);
	END $$;
	SELECT outbox_subscribe('killer', '*', 'killer');
});
my $log_start = -s $node->logfile;

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('job', jsonb_build_object('n', i)) FROM generate_series(1, 3) i;
	SELECT outbox_publish('job', '{"kill": true}');
	SELECT outbox_publish('job', jsonb_build_object('n', i)) FROM generate_series(4, 6) i;
	COMMIT;
});

wait_for_relay($node, 'postgres', "SELECT status FROM deliveries WHERE payload ? 'kill'", 'failed',
	'the poison event\'s delivery ends failed');
is($node->safe_psql('postgres', "SELECT last_value FROM kills"), '3',
	'it was attempted exactly 1 + max_retries = 3 times');
is($node->safe_psql('postgres', "SELECT attempts FROM deliveries WHERE payload ? 'kill'"), '3',
	'each death counted one failed attempt');
like($node->safe_psql('postgres', "SELECT last_error FROM deliveries WHERE payload ? 'kill'"),
	qr/the relay's process ended while subscription "killer" handled this event/,
	'last_error says the process ended in that subscription');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM effects", 6,
	'its six neighbours, before and after it in the same transaction, are delivered');
is($node->safe_psql('postgres', "SELECT count(*) FROM outbox_events_archive"), '6', 'and archived once each');

my $log = slurp_file($node->logfile, $log_start);
my $starts = () = $log =~ /outbox relay started for database "postgres"/g;
ok($starts >= 3 && $starts <= 5, "the worker was started again after each death, no more ($starts starts)");
like($log, qr/restarting it in 2000 ms/, 'a worker that keeps dying is restarted after a growing delay');
like($log, qr/to subscription "killer" failed for good: the relay's process ended while it was handled/,
	'the final failure is logged');

# kill -9 of the relay inside a handler: the cluster restarts, and the event
# that was in the handler is charged one attempt.
$node->safe_psql('postgres', q{SELECT outbox_publish('job', '{"hang": true}')});
$node->poll_query_until('postgres', "SELECT is_called FROM hangs", 't') or die 'the handler did not start';
$node->safe_psql('postgres', q{INSERT INTO release_hang DEFAULT VALUES});  # its retry will not hang
kill 'KILL', relay_pid($node, 'postgres');
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE payload ? 'hang'", 1,
	'after the crash restart, the event that was in the handler is delivered on its retry');
is($node->safe_psql('postgres', "SELECT retry_count FROM outbox_events_archive WHERE payload ? 'hang'"), '1',
	'the crash was charged one attempt');
like($node->safe_psql('postgres', "SELECT last_error FROM outbox_events_archive WHERE payload ? 'hang'"),
	qr/the relay's process ended/, 'and the archive says why');
ok(slurp_file($node->logfile, $log_start) =~ /was terminated by signal 9/, 'the crash restart happened');

$node->stop;
done_testing();
