# ALTER EXTENSION outbox UPDATE from the released 0.1.0, with data in it.
#
# A database gets outbox 0.1.0 (the frozen install script) and events in
# every state: due, scheduled, active under a lease, waiting for a retry,
# failed, delivered and discarded (in the archive, in partitions made by
# outbox_archive_maintain), plus subscriptions, one paused. It is updated to
# the current version (0.1.0 -> 0.1.1 -> 0.2.0). Afterwards every row is as
# it was (with the columns 0.2.0 adds empty), the lease taken before the
# update still holds, the 0.1.1 behaviour is there (the ids errors of
# outbox_retry and outbox_discard, NULL subscription names, retention bounds,
# a table squatting a partition's name refused), and the updated extension is
# the same, object for object, as a fresh CREATE EXTENSION in another
# database: members, function definitions, privileges and comments, columns,
# constraints and indexes, the tables pg_dump dumps with their rows, and
# pg_dump --schema-only of both (plain and --binary-upgrade) is the same.
# A leased event completes with the token taken before the update; a failed
# one is retried, and one waiting for its retry is claimed again when due.
# 0.1.1 installed from its frozen script and updated equals it too. Last, the
# relay hands an event stored before the update to its subscription.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use OutboxCore;
use IPC::Run ();
use PostgreSQL::Test::Utils;
use Test::More;

my $node = core_node('upgrade', "outbox.require_transaction = off\n");
$node->start;

sub sql
{
	my ($db, $query) = @_;
	return $node->safe_psql($db, "SET search_path = outbox, public;\n$query");
}

# The SQLSTATE a statement fails with ('' if it succeeds).
my $sqlstate_fn = q{
	CREATE FUNCTION public.sqlstate_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE stmt;
		RETURN '';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE;
	END $$;
};

for my $db ('upgraded', 'fresh', 'from011')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE SCHEMA outbox; $sqlstate_fn");
}

is($node->safe_psql('postgres',
	q{SELECT string_agg(source || '->' || target, ' ' ORDER BY source, target) FROM pg_extension_update_paths('outbox')
	   WHERE path IS NOT NULL}),
	'0.1.0->0.1.1 0.1.0->0.2.0 0.1.1->0.2.0', 'update paths from 0.1.0 and 0.1.1 to 0.2.0 are shipped');

sql('upgraded', q{CREATE EXTENSION outbox SCHEMA outbox VERSION '0.1.0'});
is(sql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'outbox'}), '0.1.0',
	'0.1.0 installs from its frozen script');
is(sql('upgraded', q{SELECT sqlstate_of($$SELECT outbox.outbox_retry('{{00000000-0000-4000-8000-000000000001}}')$$)}),
	'0A000', '0.1.0 behaves as released (a 2-D ids array to outbox_retry: 0A000)');

# Events in every state, with fixed ids; subscriptions; archive partitions.
sql('upgraded', q{
	CREATE FUNCTION public.ev(n int) RETURNS uuid LANGUAGE sql AS
		$$ SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid $$;
	CREATE TABLE public.effects (event_id uuid PRIMARY KEY);
	CREATE FUNCTION public.on_order(e outbox.outbox_events) RETURNS void LANGUAGE sql AS
		$$ INSERT INTO public.effects VALUES (e.id) $$;

	BEGIN;
	SELECT outbox_publish(t, jsonb_build_object('order', n),
	                      ordering_key => CASE WHEN n IN (1, 2) THEN 'customer-7' END,
	                      headers => jsonb_build_object('trace', 'abc-' || n), id => ev(n))
	  FROM (VALUES (1, 'order.created'), (2, 'order.created'), (3, 'order.paid'), (4, 'order.paid'),
	               (5, 'order.shipped'), (6, 'order.bad'), (7, 'order.retry'), (8, 'order.poison'),
	               (9, 'order.cancelled')) v(n, t);
	SELECT outbox_publish('order.reminder', '{"order": 10}', delay => '1 day', id => ev(10));
	COMMIT;

	-- delivered: 3, 4
	SELECT outbox_complete(array_agg(id), min(lease_token))
	  FROM outbox_claim(10, '1 minute', 'worker-z', ARRAY['order.paid']);
	-- 1 (customer-7's first; 2 waits behind it) and 5: leased for an hour by worker-a
	SELECT count(*) FROM outbox_claim(10, '1 hour', 'worker-a', ARRAY['order.created', 'order.shipped']);
	-- 6: failed for good; 7: waits for a retry in an hour; 8: failed, then discarded
	SELECT outbox_fail(id, lease_token, 'permanent: bad address', retryable => false)
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.bad']);
	SELECT outbox_fail(id, lease_token, 'timeout talking to the broker', retry_in => '1 hour')
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.retry']);
	SELECT outbox_fail(id, lease_token, 'poison', retryable => false)
	  FROM outbox_claim(10, '1 minute', 'worker-b', ARRAY['order.poison']);
	SELECT outbox_discard(ARRAY[ev(8)]);
	SELECT count(*) FROM outbox_archive_maintain('7 days', 3);

	SELECT outbox_subscribe('orders', 'order.*', 'on_order');
	SELECT outbox_subscribe('refunds', 'refund.*', 'on_order');
	SELECT outbox_pause_subscription('refunds');
});

my $states_sql = q{SELECT string_agg(right(id::text, 2) || ':' || status, ' ' ORDER BY seq) FROM outbox_events};
is(sql('upgraded', $states_sql), '01:active 02:created 05:active 06:failed 07:created 09:created 10:created',
	'0.1.0: events in every state');

# Everything stored: every row of every table of the extension (all
# columns), the partitions and their bounds, the sequences.
my $data_sql = q{
	SELECT (to_jsonb(e) - 'dispatched_at')::text FROM outbox_events e ORDER BY seq;
	SELECT (to_jsonb(a) - 'deliveries')::text, a.tableoid::regclass FROM outbox_events_archive a ORDER BY id;
	SELECT (to_jsonb(s) - 'sink' - 'endpoint')::text FROM outbox_subscriptions s ORDER BY name;
	SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid)
	  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	 WHERE i.inhparent = 'outbox.outbox_events_archive'::regclass ORDER BY 1;
	SELECT last_value, is_called FROM outbox_lease_token_seq;
	SELECT pg_sequence_last_value(pg_get_serial_sequence('outbox.outbox_events', 'seq'));
};
my $before = sql('upgraded', $data_sql);
my ($worker_a_token) = sql('upgraded',
	q{SELECT DISTINCT lease_token FROM outbox_events WHERE lease_owner = 'worker-a'});

sql('upgraded', q{ALTER EXTENSION outbox UPDATE});
is(sql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'outbox'}), '0.2.0',
	'ALTER EXTENSION outbox UPDATE (to 0.2.0)');
is(sql('upgraded', $data_sql), $before,
	'every event, archived event, partition, subscription and sequence is as before the update');
is(sql('upgraded', q{SELECT count(*) FILTER (WHERE dispatched_at IS NOT NULL) || ' '
                            || (SELECT count(*) FROM outbox_events_archive WHERE deliveries IS NOT NULL) || ' '
                            || (SELECT count(*) FROM outbox_deliveries) FROM outbox_events}),
	'0 0 0', 'no event is handed to subscriptions yet, and there are no deliveries');

# The 0.1.1 behaviour.
my %new_errors = (
	q{SELECT outbox.outbox_retry('{{00000000-0000-4000-8000-000000000001}}')} => '2202E',
	q{SELECT outbox.outbox_discard('{{00000000-0000-4000-8000-000000000001}}')} => '2202E',
	q{SELECT outbox.outbox_retry(ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 100001)))} => '54000',
	q{SELECT outbox.outbox_discard(ARRAY(SELECT gen_random_uuid() FROM generate_series(1, 100001)))} => '54000',
	q{SELECT outbox.outbox_pause_subscription(NULL)} => '22004',
	q{SELECT outbox.outbox_resume_subscription(NULL)} => '22004',
	q{SELECT outbox.outbox_unsubscribe(NULL)} => '22004',
	q{SELECT outbox.outbox_archive_maintain(interval '10000 years')} => '22023',
);
for my $stmt (sort keys %new_errors)
{
	is(sql('upgraded', "SELECT sqlstate_of(\$q\$$stmt\$q\$)"), $new_errors{$stmt},
		"updated: $stmt fails with $new_errors{$stmt}");
}
# A table of another role squatting a coming day's partition name is refused.
sql('upgraded', q{
	CREATE ROLE squatter;
	GRANT USAGE, CREATE ON SCHEMA outbox TO squatter;
	SET ROLE squatter;
	SELECT format('CREATE TABLE outbox.outbox_events_archive_p%s (id uuid)',
	              to_char((now() AT TIME ZONE 'UTC')::date + 5, 'YYYYMMDD')) \gexec
	RESET ROLE;
});
is(sql('upgraded', q{SELECT sqlstate_of($$SELECT outbox.outbox_archive_maintain('7 days', 5)$$)}), '42P07',
	'updated: a table squatting a partition name is refused (42P07)');
sql('upgraded', q{
	SELECT format('DROP TABLE outbox.outbox_events_archive_p%s',
	              to_char((now() AT TIME ZONE 'UTC')::date + 5, 'YYYYMMDD')) \gexec
	REVOKE ALL ON SCHEMA outbox FROM squatter;
	DROP ROLE squatter;
});
is(sql('upgraded', q{SELECT count(*) FROM outbox_archive_maintain('7 days', 5)}), '2',
	'updated: then the missing partitions are made');

# The data works as before: the lease taken before the update, retry,
# discard, publish, claim, complete.
ok(sql('upgraded', qq{SELECT outbox_heartbeat(ARRAY[ev(1), ev(5)], $worker_a_token, '1 hour') > now()}),
	'updated: the lease taken before the update heartbeats');
is(sql('upgraded', qq{SELECT outbox_complete(ARRAY[ev(1), ev(5)], $worker_a_token)}), '2',
	'updated: and completes');
is(sql('upgraded', q{SELECT outbox_retry(ARRAY[ev(6)])}), '1', 'updated: the failed event is retried');
# 7 failed before the update with a retry scheduled in an hour: its time
# comes (moved here), and it is claimed again as its second attempt.
sql('upgraded', q{UPDATE outbox_events SET available_at = now() WHERE id = ev(7)});
sql('upgraded', q{SELECT outbox_publish('order.created', '{"order": 11}', id => ev(11))});
is(sql('upgraded', q{
	CREATE TABLE public.claimed AS SELECT * FROM outbox_claim(100, '1 minute', 'after-update');
	SELECT string_agg(right(id::text, 2), ' ' ORDER BY id) FROM claimed}),
	'02 06 07 09 11', 'updated: a claim takes the due events (the retrying one among them), customer-7 in order');
is(sql('upgraded', q{SELECT c.attempt || ' ' || e.last_error FROM claimed c JOIN outbox_events e USING (id)
                      WHERE id = ev(7)}),
	'2 timeout talking to the broker', 'updated: the retrying event comes back as its second attempt, its error kept');
is(sql('upgraded', q{SELECT outbox_complete(array_agg(id), min(lease_token)) FROM claimed}), '5',
	'updated: the claimed events complete');
is(sql('upgraded', q{SELECT string_agg(right(id::text, 2) || ':' || status, ' ' ORDER BY id) FROM outbox_events_archive}),
	'01:completed 02:completed 03:completed 04:completed 05:completed 06:completed 07:completed 08:failed 09:completed 11:completed',
	'updated: the archive holds what was delivered or discarded, before and after the update');

# The updated extension equals a fresh install of 0.2.0, object for object.
sql('fresh', q{CREATE EXTENSION outbox SCHEMA outbox});
is(sql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'outbox'}), '0.2.0', 'fresh install of 0.2.0');

my $schema_sql = q{
	-- the extension's members
	SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
	  FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
	 WHERE d.refclassid = 'pg_extension'::regclass AND x.extname = 'outbox' AND d.deptype = 'e'
	 ORDER BY 1;
	-- the tables pg_dump dumps with their rows
	SELECT 'config ' || c::regclass || ' ' || coalesce(w, '')
	  FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS u(c, w)
	 WHERE x.extname = 'outbox' ORDER BY 1;
	-- functions: definition (arguments, defaults, volatility, security,
	-- settings, body), owner, privileges, comment
	SELECT pg_get_functiondef(p.oid) || E'\n-- owner ' || pg_get_userbyid(p.proowner)
	       || E'\n-- acl ' || coalesce(p.proacl::text, 'default')
	       || E'\n-- comment ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
	  FROM pg_proc p WHERE p.pronamespace = 'outbox'::regnamespace ORDER BY p.oid::regprocedure::text;
	-- relations: kind, options, owner, privileges, comment
	SELECT c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.reloptions::text, '') || ' '
	       || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, 'default') || ' '
	       || coalesce(obj_description(c.oid, 'pg_class'), '')
	  FROM pg_class c WHERE c.relnamespace = 'outbox'::regnamespace
	   AND c.relname !~ '^outbox_events_archive_p[0-9]{8}' ORDER BY 1;
	-- columns
	SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
	       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
	  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p')
	   AND c.relname !~ '^outbox_events_archive_p[0-9]{8}'
	   AND a.attnum > 0 AND NOT a.attisdropped
	 ORDER BY c.relname, a.attnum;
	-- constraints and indexes
	SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE connamespace = 'outbox'::regnamespace
	   AND conrelid::regclass::text !~ 'outbox_events_archive_p[0-9]{8}' ORDER BY 1;
	SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
	 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relname !~ '^outbox_events_archive_p[0-9]{8}'
	 ORDER BY 1;
	-- types
	SELECT t.typname || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
	  FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
	 WHERE t.typnamespace = 'outbox'::regnamespace GROUP BY t.typname ORDER BY 1;
	-- the schema's privileges
	SELECT nspacl::text FROM pg_namespace WHERE nspname = 'outbox';
};
# And so does 0.1.1 installed from its frozen script and updated (empty).
sql('from011', q{CREATE EXTENSION outbox SCHEMA outbox VERSION '0.1.1'});
is(sql('from011', q{SELECT extversion FROM pg_extension WHERE extname = 'outbox'}), '0.1.1',
	'0.1.1 installs from its frozen script');
sql('from011', q{ALTER EXTENSION outbox UPDATE});
my $upgraded_schema = sql('upgraded', $schema_sql);
my $fresh_schema = sql('fresh', $schema_sql);
my $from011_schema = sql('from011', $schema_sql);
like($fresh_schema, qr/^member function (outbox\.)?_outbox_check_ids\(uuid\[\]\)$/m,
	'the comparison sees the extension\'s members (the function 0.1.1 adds among them)');
like($fresh_schema, qr/^member table (outbox\.)?outbox_deliveries$/m, 'and the table 0.2.0 adds');
like($fresh_schema, qr/CREATE OR REPLACE FUNCTION outbox\.outbox_archive_maintain/,
	'the comparison sees function definitions');
if ($upgraded_schema eq $fresh_schema)
{
	pass('the updated extension equals a fresh install of 0.2.0');
}
else
{
	my $tmp = PostgreSQL::Test::Utils::tempdir;
	write_file("$tmp/upgraded", "$upgraded_schema\n");
	write_file("$tmp/fresh", "$fresh_schema\n");
	diag(scalar `diff -u $tmp/fresh $tmp/upgraded`);
	fail('the updated extension equals a fresh install of 0.2.0');
}
if ($from011_schema eq $fresh_schema)
{
	pass('0.1.1 updated to 0.2.0 equals a fresh install of 0.2.0');
}
else
{
	my $tmp = PostgreSQL::Test::Utils::tempdir;
	write_file("$tmp/from011", "$from011_schema\n");
	write_file("$tmp/fresh", "$fresh_schema\n");
	diag(scalar `diff -u $tmp/fresh $tmp/from011`);
	fail('0.1.1 updated to 0.2.0 equals a fresh install of 0.2.0');
}

# And pg_dump --schema-only of both databases is the same. A plain schema
# dump shows an extension's members only as its CREATE EXTENSION, so it is
# compared with --binary-upgrade too, which dumps every member (with its
# privileges and comments, and the configuration tables' registrations)
# as pg_upgrade would restore it. Left out: the public schema (the test's
# own helpers, in the updated database only) and the archive's day
# partitions (made by outbox_archive_maintain, in the updated database only);
# masked: OIDs, transaction ids, the database's name, pg_dump's random
# \restrict key, and the data --binary-upgrade dumps (sequence positions,
# the stored default of a column added to a table that had rows).
my $dumpdir = PostgreSQL::Test::Utils::tempdir;
for my $mode ('plain', 'binary-upgrade')
{
	my %dump;
	for my $db ('upgraded', 'fresh', 'from011')
	{
		my ($out, $err) = ('', '');
		my @cmd = ($node->installed_command('pg_dump'), '--schema-only', '--exclude-schema=public',
			'--exclude-table=outbox.outbox_events_archive_p*', '-d', $node->connstr($db));
		push @cmd, '--binary-upgrade' if $mode eq 'binary-upgrade';
		IPC::Run::run(\@cmd, '>', \$out, '2>', \$err) or die "pg_dump $db failed: $err";
		$out = join('', grep { !/binary_upgrade_set_next_|binary_upgrade_set_missing_value/ } split /^/, $out);
		$out =~ s/\b$db\b/DBNAME/g;
		$out =~ s/pg_toast_[0-9]+/pg_toast_N/g;
		$out =~ s/relfrozenxid = '[0-9]+'/relfrozenxid = 'XID'/g;
		$out =~ s/WHERE oid = '[0-9]+';/WHERE oid = 'OID';/g;
		$out =~ s/'\{[0-9,]+\}'/'{OIDS}'/g;
		$out =~ s/^\\(un)?restrict .*/\\$1restrict KEY/mg;
		# Data, not schema (--binary-upgrade dumps both): the sequences'
		# positions, and the stored default of a column added to a table
		# that had rows (its binary_upgrade_set_missing_value line is gone
		# already).
		$out =~ s/(pg_catalog\.setval\('[^']+', )[0-9]+, (true|false)\)/$1N)/g;
		$out =~ s/^-- set missing value\.\n\n\n//mg;
		$dump{$db} = $out;
		write_file("$dumpdir/$db.$mode.sql", $out);
	}
	like($dump{fresh}, $mode eq 'plain' ? qr/^CREATE EXTENSION IF NOT EXISTS outbox WITH SCHEMA outbox;$/m
	                                    : qr/^CREATE TABLE outbox\.outbox_deliveries \(/m,
		"pg_dump --schema-only ($mode) dumps the extension" . ($mode eq 'plain' ? '' : '\'s members'));
	for my $db ('upgraded', 'from011')
	{
		my $what = "pg_dump --schema-only ($mode): the database updated from "
		  . ($db eq 'upgraded' ? '0.1.0' : '0.1.1') . ' equals the fresh one';
		if ($dump{$db} eq $dump{fresh})
		{
			pass($what);
		}
		else
		{
			diag(scalar `diff -u $dumpdir/fresh.$mode.sql $dumpdir/$db.$mode.sql`);
			fail($what);
		}
	}
}

# The relay, started now, hands the reminder published before the update
# (made due here) to the subscription its type matches, and archives it with
# that subscription's outcome.
sql('upgraded', q{UPDATE outbox_events SET available_at = now() WHERE id = ev(10)});
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET outbox.enabled = on;
	ALTER SYSTEM SET outbox.databases = 'upgraded';
	SELECT pg_reload_conf();
});
ok($node->poll_query_until('upgraded', q{SELECT count(*) FROM public.effects WHERE event_id = public.ev(10)}, '1'),
	'the relay delivers an event stored before the update');
is(sql('upgraded', q{SELECT count(*) FROM effects}), '1', 'the relay delivered it once, and only it');
ok($node->poll_query_until('upgraded',
	q{SELECT status || ' ' || (deliveries->'orders'->>'status') FROM outbox.outbox_events_archive WHERE id = public.ev(10)},
	'completed completed'),
	'it is archived with its subscription\'s outcome');

$node->stop;
done_testing();
