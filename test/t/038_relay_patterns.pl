# The relay hands an event to the subscriptions whose pattern the claims
# would take it for: the same '*' patterns, with LIKE's own characters (%, _
# and \) matching only themselves, and multibyte characters. Each pattern's
# claim (outbox_claim_xact, rolled back) is compared with what its
# subscription's handler received once the relay ran.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;

my $node = relay_node('patterns', 'outbox.enabled' => 'off', 'outbox.poll_interval' => '100ms');
setup_relay_db($node, 'postgres');

my @patterns = ('order_paid', 'order%paid', '100%', 'back\slash', 'user.*', '*X*', '*', 'a*b*c', '**', 'é*',
	'*.*.*', 'x_*');
my @types = ('order_paid', 'orderXpaid', 'order%paid', '100%', '1000', 'back\slash', 'backslash', 'backXslash',
	'user.created', 'user.', 'user', 'userX', 'X', 'abc', 'aXbYc', 'acb', 'ab', 'été', 'e', 'a.b.c', 'a.b',
	'x_y', 'xAy', 'x_');

$node->safe_psql('postgres', 'CREATE TABLE seen (sub int NOT NULL, type text NOT NULL)');
for my $i (0 .. $#patterns)
{
	my $p = $patterns[$i];
	$node->safe_psql('postgres', qq{
		CREATE FUNCTION seen_$i(e outbox_events) RETURNS void LANGUAGE sql
			AS \$\$ INSERT INTO public.seen VALUES ($i, e.type) \$\$;
		SELECT outbox_subscribe('s$i', \$p\$$p\$p\$, 'seen_$i');
	});
}
for my $t (@types)
{
	$node->safe_psql('postgres', "SELECT outbox_publish(\$t\$$t\$t\$, '{}')");
}

# What each pattern's claim takes (the relay is off: nothing moves meanwhile).
my @claimed;
for my $p (@patterns)
{
	push @claimed, $node->safe_psql('postgres', qq{
		BEGIN;
		SELECT coalesce(string_agg(type, ' ' ORDER BY type COLLATE "C"), '')
		  FROM outbox_claim_xact(1000, types => ARRAY[\$p\$$p\$p\$]);
		ROLLBACK;
	});
}
is($claimed[6], join(' ', sort @types), "the claim of '*' takes every type");

$node->safe_psql('postgres', 'ALTER SYSTEM SET outbox.enabled = on; SELECT pg_reload_conf();');
wait_for_relay($node, 'postgres', 'SELECT count(*) FROM outbox_events', 0, 'the relay delivered every event');

for my $i (0 .. $#patterns)
{
	my $got = $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(type, ' ' ORDER BY type COLLATE \"C\"), '') FROM seen WHERE sub = $i");
	is($got, $claimed[$i], "pattern '$patterns[$i]': the relay's handler got what the claim takes ($got)");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM seen WHERE sub = 0'), '1',
	"'order_paid' matches itself only, not 'orderXpaid'");
is($node->safe_psql('postgres', "SELECT string_agg(type, ' ') FROM seen WHERE sub = 9"), 'été',
	"a multibyte pattern matches by characters");

$node->stop;
done_testing();
