# A handler runs as the role that owns its subscription: it can do what that
# role can, and nothing more (not even switch roles).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('roles', 'outbox.max_retries' => '0', 'outbox.poll_interval' => '10min');
setup_relay_db($node, 'postgres');
$node->safe_psql('postgres', q{
	CREATE ROLE alice;
	GRANT outbox_admin TO alice;
	CREATE TABLE secrets (s text);
	INSERT INTO secrets VALUES ('the key');
	CREATE TABLE alice_log (event_id uuid, who text, note text);
	GRANT INSERT ON alice_log TO alice;
	CREATE FUNCTION alice_handler(e outbox_events) RETURNS void LANGUAGE plpgsql AS $$
	BEGIN
		IF e.type = 'steal' THEN
			INSERT INTO public.alice_log SELECT e.id, current_user, s FROM public.secrets;
		ELSIF e.type = 'escalate' THEN
			RESET ROLE;
			INSERT INTO public.alice_log VALUES (e.id, current_user, 'escalated');
		ELSE
			INSERT INTO public.alice_log VALUES (e.id, current_user, 'ok');
		END IF;
	END $$;
	SET ROLE alice;
	SELECT outbox_subscribe('alice', '*', 'alice_handler');
	RESET ROLE;
});
is($node->safe_psql('postgres', "SELECT owner FROM outbox_subscriptions"), 'alice',
	'the subscription is owned by the role that registered it');

$node->safe_psql('postgres', q{
	BEGIN;
	SELECT outbox_publish('hello', '{}');
	SELECT outbox_publish('steal', '{}');
	SELECT outbox_publish('escalate', '{}');
	COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT count(*) FROM deliveries WHERE status = 'failed'", 2,
	'the two overreaching events\' deliveries fail');
is($node->safe_psql('postgres', "SELECT who || ' ' || note FROM alice_log"), 'alice ok',
	'the allowed handler call ran as alice');
like($node->safe_psql('postgres', "SELECT last_error FROM deliveries WHERE type = 'steal'"),
	qr/permission denied for table secrets/, 'reading a table alice may not read fails');
like($node->safe_psql('postgres', "SELECT last_error FROM deliveries WHERE type = 'escalate'"),
	qr/cannot set parameter "role" within security-(definer function|restricted operation)/, 'switching roles fails');

# Revoking EXECUTE on the handler from its owner stops the deliveries.
$node->safe_psql('postgres', q{
	REVOKE EXECUTE ON FUNCTION alice_handler(outbox_events) FROM PUBLIC;
	BEGIN; SELECT outbox_publish('hello.again', '{}'); COMMIT;
});
wait_for_relay($node, 'postgres', "SELECT status FROM deliveries WHERE type = 'hello.again'", 'failed',
	'a handler its owner may no longer execute is not run');
like($node->safe_psql('postgres', "SELECT last_error FROM deliveries WHERE type = 'hello.again'"),
	qr/role "alice" may not execute alice_handler/, 'and the error says why');

$node->stop;
done_testing();
