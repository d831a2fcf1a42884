# Four concurrent consumers drain the outbox through claim / complete: each
# event is delivered exactly once.
#
# Each consumer is a real psql session looping over: claim a batch; fail about
# 1% of it (to be retried at once) and release about 1% (given back without
# counting an attempt); "deliver" the rest (print its ids) and complete it.
# Afterwards: each claim handed out distinct events under one lease token,
# every event was delivered once (no id twice across consumers,
# none missing), the archive holds each event once, the outbox is empty, each
# event's retry_count equals the failures reported for it (releases are not
# counted), no consumer call failed, and events of one ordering key were
# completed in publish order.
#
# OUTBOX_DRAIN_EVENTS sets the number of events (default 100000: about 40 s
# in all on a busy 2-core machine, of which about 25 s of draining).
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use OutboxCore;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $events = $ENV{OUTBOX_DRAIN_EVENTS} || 100000;
my $consumers = 4;

my $node = core_node('drain', <<'CONF');
log_statement = none
outbox.max_retries = 1000
outbox.require_transaction = error
CONF
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION outbox');

# Publish: 10% of the events carry one of 100 ordering keys.
my $t0 = time;
for (my $from = 1; $from <= $events; $from += 10000)
{
	my $to = $from + 9999 > $events ? $events : $from + 9999;
	$node->safe_psql('postgres', qq{
		BEGIN;
		SELECT count(outbox_publish('drain.event', jsonb_build_object('n', g),
		                            CASE WHEN g % 10 = 0 THEN 'key-' || (g / 10) % 100 END))
		  FROM generate_series($from, $to) g;
		COMMIT;
	});
}
note sprintf('published %d events in %.1f s', $events, time - $t0);

# One iteration of a consumer. Output lines: "D <id>" delivered,
# "F <id>" failed, "R <id>" released. Sets :done once the outbox is empty.
my $tmp = PostgreSQL::Test::Utils::tempdir;
write_file("$tmp/step.sql", <<'SQL');
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(min(lease_token), 0) AS tok, count(*) > 0 AS got,
       count(DISTINCT lease_token) AS tokens, count(DISTINCT id) = count(*) AS distinct_ids
  FROM outbox_claim(100, '5 minutes', :'me') \gset
SELECT 'T ' || :tokens || ' ' || :'distinct_ids' WHERE :tokens > 1 OR NOT :'distinct_ids'::boolean;
\if :got
SELECT coalesce(array_agg(id) FILTER (WHERE r < 0.01), '{}') AS fail_ids,
       coalesce(array_agg(id) FILTER (WHERE r >= 0.01 AND r < 0.02), '{}') AS release_ids,
       coalesce(array_agg(id) FILTER (WHERE r >= 0.02), '{}') AS done_ids
  FROM (SELECT id, random() AS r FROM unnest(:'ids'::uuid[]) id) s \gset
SELECT 'F ' || id, outbox_fail(id, :tok, 'simulated failure', '0 seconds') FROM unnest(:'fail_ids'::uuid[]) id;
SELECT outbox_release(:'release_ids', :tok) WHERE cardinality(:'release_ids'::uuid[]) > 0 \g /dev/null
SELECT 'R ' || id FROM unnest(:'release_ids'::uuid[]) id;
SELECT outbox_complete(:'done_ids', :tok) WHERE cardinality(:'done_ids'::uuid[]) > 0 \g /dev/null
SELECT 'D ' || id FROM unnest(:'done_ids'::uuid[]) id;
\else
SELECT NOT EXISTS (SELECT FROM outbox_events) AS done \gset
\if :done
\else
SELECT pg_sleep(0.01) \g /dev/null
\endif
\endif
SQL
# psql has no loop, and \q in an included file only leaves that file: up to
# 10^5 iterations through nested includes, each skipped once :done is set.
my $loop = 'step.sql';
for my $level (1 .. 4)
{
	write_file("$tmp/loop$level.sql", "\\if :done\n\\else\n\\ir $loop\n\\endif\n" x 10);
	$loop = "loop$level.sql";
}
write_file("$tmp/consumer.sql", "\\set ON_ERROR_STOP 1\n\\set done false\n" . "\\ir $loop\n" x 10);

$t0 = time;
my (@h, @out, @err);
for my $c (1 .. $consumers)
{
	$h[$c] = start_psql_script($node, 'postgres', "$tmp/consumer.sql",
		"$tmp/consumer$c.out", "$tmp/consumer$c.err", "me=consumer$c");
}
my @status;
for my $c (1 .. $consumers)
{
	$h[$c]->finish;
	push @status, $h[$c]->result(0);
	$out[$c] = slurp_file("$tmp/consumer$c.out");
	$err[$c] = slurp_file("$tmp/consumer$c.err");
}
my $elapsed = time - $t0;
note sprintf('%d consumers drained %d events in %.1f s (%.0f events/s)',
	$consumers, $events, $elapsed, $events / $elapsed);

is_deeply(\@status, [ (0) x $consumers ], 'every consumer ran to the end without an error')
  or diag join("\n", map { "consumer $_: $err[$_]" } 1 .. $consumers);
is(join('', @err[1 .. $consumers]), '', 'no consumer printed an error');

my (%delivered, %failed, %released, @per_consumer);
my ($deliveries, $odd_claims) = (0, 0);
for my $c (1 .. $consumers)
{
	my $n = 0;
	for my $line (split /\n/, $out[$c])
	{
		if ($line =~ /^D (\S+)$/) { $delivered{$1}++; $deliveries++; $n++; }
		elsif ($line =~ /^F (\S+)\|/) { $failed{$1}++; }
		elsif ($line =~ /^R (\S+)$/) { $released{$1}++; }
		elsif ($line =~ /^T /) { $odd_claims++; }
	}
	push @per_consumer, $n;
}
note "deliveries per consumer: @per_consumer";
note sprintf('failures reported: %d, releases: %d', scalar(map { ($_) x $failed{$_} } keys %failed),
	scalar(map { ($_) x $released{$_} } keys %released));

is($odd_claims, 0, 'each claim handed out distinct events under one lease token');
is($deliveries, $events, "$events deliveries in all");
is(scalar(keys %delivered), $events, 'of as many distinct events: none delivered twice');
ok((grep { $_ > 0 } @per_consumer) == $consumers, 'every consumer delivered some');
ok(keys(%failed) > 0 && keys(%released) > 0, 'some attempts failed and some events were released');

is($node->safe_psql('postgres', 'SELECT count(*) FROM outbox_events'), '0', 'the outbox is empty');
my $archive = $node->safe_psql('postgres',
	q{SELECT id, retry_count, status FROM outbox_events_archive ORDER BY id});
my %archived;
my ($archive_rows, $wrong_status, $wrong_retries) = (0, 0, 0);
for my $row (split /\n/, $archive)
{
	my ($id, $retries, $st) = split /\|/, $row;
	$archive_rows++;
	$archived{$id}++;
	$wrong_status++ if $st ne 'completed';
	$wrong_retries++ if $retries != ($failed{$id} // 0);
}
is($archive_rows, $events, "the archive holds $events events");
is(scalar(keys %archived), $events, 'each once');
is(scalar(grep { !$archived{$_} } keys %delivered), 0, 'every delivered event is in the archive');
is($wrong_status, 0, 'all of them completed');
is($wrong_retries, 0, 'retry_count of each = failures reported for it (releases not counted)');

# Per key: completion order is publish order.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT completed_on, lag(completed_on) OVER (PARTITION BY ordering_key ORDER BY seq) AS before
		  FROM outbox_events_archive WHERE ordering_key IS NOT NULL) s
	 WHERE completed_on <= before}), '0',
	'events of each ordering key were completed in publish order');

$node->stop;
done_testing();
