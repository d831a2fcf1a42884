# Issue 13: 10,000 events to three endpoints at once: a healthy one (200), a
# flaky one (500 to 30 % of the requests, at random) and a stalled one (never
# answers; its timeout is 1 s, and with the breaker out of reach it keeps its
# 16 requests hanging all the time). Every event reaches every endpoint, none
# is lost; duplicates (re-sends after a 2xx) only where a timeout made them,
# and counted; the attempts the database counted are the requests the
# receiver got; the healthy endpoint's latency does not suffer from the
# stalled one (against a baseline without it, measured first in this test);
# per-key order holds at each endpoint. Then the stalled endpoint is paused,
# 50 of its deliveries are given up (outbox_discard_deliveries), and it
# answers 200 again: it catches up, and the archive has the three outcomes of
# every event.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $t_start = time;
my $node = webhook_node('whthree',
	# A retry after each of 1,000 failures: the flaky endpoint's deliveries
	# never give up (0.3^6 per event would, with the default 5).
	'outbox.max_retries' => '1000',
	# Out of reach: the stalled endpoint keeps its requests hanging instead of
	# resting behind an open breaker, the harder case for its neighbours.
	'outbox.webhook_breaker_failures' => '1000',
	# Latency from the publishing transaction's commit.
	'track_commit_timestamp' => 'on');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub endpoint { return create_endpoint($node, $r, @_); }

sub pct
{
	my ($p, @v) = @_;
	return 0 unless @v;
	my @s = sort { $a <=> $b } @v;
	my $i = int($p / 100 * $#s + 0.5);
	return $s[$i];
}

my $flaky_cfg = { mode => 'flaky', fail_ratio => 0.3 };

# The publishing transactions' commit times (ms since the epoch), by batch.
sql(q{CREATE TABLE batches (name text PRIMARY KEY)});

# Publish $n events of type $type in one transaction: every fifth unkeyed,
# the others over 50 ordering keys (k0 .. k49), four in a row on one key.
sub publish
{
	my ($type, $n) = @_;
	sql("BEGIN;
		INSERT INTO batches VALUES ('$type');
		SELECT count(outbox_publish('$type', jsonb_build_object('i', i),
			ordering_key => CASE WHEN i % 5 = 0 THEN NULL ELSE 'k' || ((i / 5) % 50) END))
		  FROM generate_series(1, $n) i;
		COMMIT;");
	return;
}

sub commit_ms
{
	my ($type) = @_;
	return sql("SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000 FROM batches WHERE name = '$type'");
}

# Commit-to-arrival latencies (ms) of the first 2xx of each event of $type at $path.
sub latencies
{
	my ($path, $type, $records) = @_;
	my $c = commit_ms($type);
	my %seen;
	return map { $_->{at} - $c }
	  grep { ($_->{type} // '') eq $type && ($_->{answered} // '') eq '200' && !$seen{ $_->{id} }++ } @$records;
}

# Per-key order at an endpoint: for each key, the seqs of the first 2xx of
# each event, in the order the receiver answered them, must be the key's
# seqs in publish order ($want: key -> [seq ...] ascending). Returns the keys
# that differ.
sub order_mismatches
{
	my ($records, $want) = @_;
	my (%got, %seen);
	for my $rec (@$records)
	{
		next unless ($rec->{answered} // '') eq '200' && defined $rec->{ordering_key};
		next if $seen{ $rec->{id} }++;
		push @{ $got{ $rec->{ordering_key} } }, $rec->{seq};
	}
	my @bad;
	for my $k (sort keys %$want)
	{
		push @bad, $k unless join(',', @{ $got{$k} // [] }) eq join(',', @{ $want->{$k} });
	}
	push @bad, grep { !$want->{$_} } sort keys %got;
	return @bad;
}

# Ids answered 2xx at a path (id -> how many 2xx).
sub acked
{
	my ($records) = @_;
	my %a;
	$a{ $_->{id} }++ for grep { ($_->{answered} // '') eq '200' } @$records;
	return \%a;
}

# ---- Baseline: 2,000 events to a healthy and a flaky endpoint, no stalled one ----
endpoint('base_healthy', '/base_healthy');
endpoint('base_flaky', '/base_flaky', { %$flaky_cfg, seed => 7 });
sql("SELECT outbox_subscribe_webhook('to_base_healthy', 'base.*', 'base_healthy')");
sql("SELECT outbox_subscribe_webhook('to_base_flaky', 'base.*', 'base_flaky')");
my $sink = sink_pid($node, 'postgres');
publish('base.x', 2000);
ok(wait_until(60, sub { receiver_stats($r, '/base_healthy')->{unique_ids} >= 2000 }),
	'baseline: the healthy endpoint got the 2,000 events');
my @base = latencies('/base_healthy', 'base.x', receiver_records($r, '/base_healthy'));
is(scalar @base, 2000, 'baseline: 2,000 answered 2xx');
my ($base_p50, $base_p99, $base_max) = (pct(50, @base), pct(99, @base), pct(100, @base));
note(sprintf('baseline (healthy + flaky): healthy commit->arrival p50 %.0f ms, p99 %.0f ms, all in %.0f ms',
	$base_p50, $base_p99, $base_max));
wait_for_relay($node, 'postgres', "SELECT count(*) FROM outbox_events_archive WHERE type = 'base.x'", 2000,
	'baseline: the flaky endpoint got them too, all archived');

# ---- 10,000 events to three endpoints ----
endpoint('healthy', '/healthy');
endpoint('flaky', '/flaky', { %$flaky_cfg, seed => 13 });
endpoint('stalled', '/stalled', { mode => 'stall' }, "timeout => '1 s'");
sql("SELECT outbox_subscribe_webhook('to_healthy', 'tri.*', 'healthy')");
sql("SELECT outbox_subscribe_webhook('to_flaky', 'tri.*', 'flaky')");
sql("SELECT outbox_subscribe_webhook('to_stalled', 'tri.*', 'stalled')");

# Five transactions of 2,000 (the baseline's size), each once the healthy
# endpoint has the one before: each batch's latency compares with the
# baseline's, while the flaky and the stalled endpoints' backlogs grow.
my $batches = 5;
my $per_batch = 2000;
my $total = $batches * $per_batch;
my (@batch_p50, @batch_p99, @batch_all);
my $t_main = time;
my $max_stalled_in_flight = 0;
for my $b (1 .. $batches)
{
	publish("tri.b$b", $per_batch);
	ok( wait_until(60, sub {
			my $f = sql("SELECT in_flight FROM outbox_endpoint_stats() WHERE endpoint = 'stalled'");
			$max_stalled_in_flight = $f if $f > $max_stalled_in_flight;
			receiver_stats($r, '/healthy')->{unique_ids} >= $b * $per_batch }),
		"batch $b: the healthy endpoint got its $per_batch events beside the stalled one");
	my @l = latencies('/healthy', "tri.b$b", receiver_records($r, '/healthy'));
	push @batch_p50, pct(50, @l);
	push @batch_p99, pct(99, @l);
	push @batch_all, pct(100, @l);
	note(sprintf('batch %d: healthy commit->arrival p50 %.0f ms, p99 %.0f ms, all in %.0f ms; flaky has %d, stalled holds %d',
		$b, $batch_p50[-1], $batch_p99[-1], $batch_all[-1],
		receiver_stats($r, '/flaky')->{answered}{200} // 0, $max_stalled_in_flight));
}
my $healthy_took = time - $t_main;
note(sprintf('the healthy endpoint got all %d in %.1f s (publishing included)', $total, $healthy_took));
# Within 5 times what the baseline's 2,000 took, per batch (at least 60 s in
# all): the machine's speed (an assert-enabled server, other jobs) moves both.
my $bound = 5 * $batches * $base_max / 1000;
$bound = 60 if $bound < 60;
cmp_ok($healthy_took, '<', $bound,
	sprintf('the healthy endpoint got all 10,000 beside the stalled one within %.0f s (5x the baseline per batch)', $bound));

# The healthy endpoint's latency beside the stalled endpoint against the
# baseline without it: the median of the batches' medians within 5 times the
# baseline's (which counts as at least 250 ms: a tiny baseline would make the
# ratio noise on a busy machine).
my $main_p50 = pct(50, @batch_p50);
my $main_p99 = pct(50, @batch_p99);
my $ratio = $main_p50 / ($base_p50 > 0 ? $base_p50 : 1);
note(sprintf('healthy p50 beside the stalled endpoint %.0f ms (baseline %.0f ms, ratio %.2f); p99 %.0f ms (baseline %.0f ms)',
	$main_p50, $base_p50, $ratio, $main_p99, $base_p99));
cmp_ok($main_p50, '<', 5 * ($base_p50 > 250 ? $base_p50 : 250),
	'the healthy endpoint\'s median latency is within 5x the baseline\'s');
cmp_ok(pct(100, @batch_all), '<', 30_000, 'every batch reached the healthy endpoint within 30 s of its commit');

my %published;    # id -> [seq, key]
for my $row (split /\n/, sql("SELECT id, seq, coalesce(ordering_key, '') FROM outbox_events WHERE type LIKE 'tri.%'"))
{
	my ($id, $seq, $key) = split /\|/, $row;
	$published{$id} = [ $seq, $key ];
}
is(scalar keys %published, $total, 'the 10,000 events wait in outbox_events (the stalled endpoint has not got them)');
my %want;    # key -> [seq ...] in publish order
for my $id (sort { $published{$a}[0] <=> $published{$b}[0] } keys %published)
{
	push @{ $want{ $published{$id}[1] } }, $published{$id}[0] if $published{$id}[1] ne '';
}
is(scalar keys %want, 50, '50 ordering keys');
note(sprintf('%d keyed events, %d unkeyed', scalar(map { @$_ } values %want), $total - scalar(map { @$_ } values %want)));

# ---- The healthy endpoint: each event once ----
my $h = receiver_stats($r, '/healthy');
is("$h->{received} $h->{unique_ids} $h->{duplicates} $h->{bad_signatures} $h->{order_violations}",
	"$total $total 0 0 0", 'healthy: each of the 10,000 received exactly once, signed, no order violation');
my $h_rec = receiver_records($r, '/healthy');
my $h_acked = acked($h_rec);
is(scalar(grep { !$h_acked->{$_} } keys %published), 0, 'healthy: none of the published events is missing');
is(join(' ', order_mismatches($h_rec, \%want)), '', 'healthy: at each key, the events arrived in publish order');

# ---- The flaky endpoint: each event eventually, retries counted ----
ok( wait_until(120, sub {
		sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'to_flaky' AND completed_on IS NOT NULL")
		  == $total }),
	'flaky: every delivery completed');
my $f = receiver_stats($r, '/flaky');
my $f_500 = $f->{answered}{500} // 0;
my $f_200 = $f->{answered}{200} // 0;
note("flaky: $f->{received} requests for $total events: $f_200 answered 200, $f_500 answered 500 ("
	  . sprintf('%.1f %%', 100 * $f_500 / ($f->{received} || 1)) . "), $f->{duplicates} duplicates; answered "
	  . JSON::PP->new->canonical->encode($f->{answered}));
is("$f->{unique_ids} $f->{bad_signatures} $f->{order_violations}", "$total 0 0",
	'flaky: all 10,000 distinct ids received, signed, no order violation');
is($f->{duplicates}, 0, 'flaky: no duplicate (no timeout or crash there)');
is($f_200, $total, 'flaky: each event answered 200 once');
is($f->{received}, $f_200 + $f_500, 'flaky: every other request was a 500, retried: received = unique + retries');
cmp_ok($f_500, '>', 0.2 * $f->{received}, 'flaky: about 30 % of the requests failed (more than 20 %)');
cmp_ok($f_500, '<', 0.4 * $f->{received}, '(and fewer than 40 %)');
my $f_rec = receiver_records($r, '/flaky');
my $f_acked = acked($f_rec);
is(scalar(grep { !$f_acked->{$_} } keys %published), 0, 'flaky: none of the published events is missing');
is(join(' ', order_mismatches($f_rec, \%want)), '', 'flaky: at each key, the events were acknowledged in publish order');
is(sql("SELECT sum(attempts) FROM outbox_deliveries WHERE subscription = 'to_flaky'"), $f->{received},
	'flaky: the attempts the database counted are the requests received');
is(sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'to_healthy' AND completed_on IS NOT NULL AND attempts = 1"),
	$total, 'healthy: every delivery completed at its first attempt');

# ---- The stalled endpoint: nothing delivered, nothing lost, nothing given up ----
my $st_mid = receiver_stats($r, '/stalled');
note("stalled: $st_mid->{received} requests so far (each timed out after 1 s), at most $max_stalled_in_flight in flight");
cmp_ok($max_stalled_in_flight, '>', 0, 'stalled: its requests were in flight meanwhile');
cmp_ok($max_stalled_in_flight, '<=', 16, 'stalled: never more than its max_in_flight (16)');
is( sql("SELECT count(*) || ' ' || count(*) FILTER (WHERE status IN ('created', 'active') AND completed_on IS NULL)
	  FROM outbox_deliveries WHERE subscription = 'to_stalled'"),
	"$total $total", 'stalled: its 10,000 deliveries all wait (pending or in flight), none delivered or given up');
is(sql("SELECT state FROM outbox_endpoint_stats() WHERE endpoint = 'stalled'"), 'enabled', 'stalled: still enabled');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type LIKE 'tri.%'"), '0',
	'no event archived while the stalled endpoint has not got it');

# ---- Pause it, give up 50 of its deliveries, and let it answer ----
sql("SELECT outbox_pause_endpoint('stalled')");
wait_for_relay($node, 'postgres',
	"SELECT count(*) FROM outbox_deliveries WHERE subscription = 'to_stalled' AND status = 'active'", 0,
	'paused: the stalled endpoint\'s requests in flight end (timed out)');
my @discard = split /\n/, sql("SELECT event_id FROM outbox_deliveries
	WHERE subscription = 'to_stalled' AND ordering_key = 'k0' ORDER BY seq LIMIT 50");
my %discarded = map { $_ => 1 } @discard;
is(sql("SELECT outbox_discard_deliveries('to_stalled', ARRAY['" . join("','", @discard) . "']::uuid[])"), '50',
	'50 deliveries of key k0 to the stalled endpoint given up');
is( sql("SELECT count(*) FROM outbox_events_archive WHERE type LIKE 'tri.%' AND status = 'failed'
	  AND deliveries->'to_stalled'->>'status' = 'failed'
	  AND deliveries->'to_healthy'->>'status' = 'completed' AND deliveries->'to_flaky'->>'status' = 'completed'"),
	'50', 'those 50 events are archived at once, failed at the stalled endpoint, completed at the others');
my $stalled_before = receiver_stats($r, '/stalled');
receiver_config($r, '/stalled', { mode => 'ok' });
sql("SELECT outbox_resume_endpoint('stalled')");
my $t_catch = time;
ok( wait_until(120, sub { sql("SELECT count(*) FROM outbox_events_archive WHERE type LIKE 'tri.%'") == $total }),
	'once it answers, the stalled endpoint catches up: the 10,000 events are archived');
note(sprintf('the stalled endpoint caught up %d events in %.1f s', $total - 50, time - $t_catch));
is( sql("SELECT count(*) FROM outbox_events_archive WHERE type LIKE 'tri.%' AND status = 'completed'
	  AND (SELECT count(*) FROM jsonb_each(deliveries) d WHERE d.value->>'status' = 'completed') = 3
	  AND deliveries ?& ARRAY['to_healthy', 'to_flaky', 'to_stalled']"),
	$total - 50, 'the other 9,950 are archived with three completed outcomes each');
is(sql("SELECT count(*) FROM outbox_events WHERE type LIKE 'tri.%'"), '0', 'none left in the outbox');
is(sql("SELECT count(*) FROM outbox_deliveries"), '0', 'no delivery left open');
is( sql("SELECT sum((deliveries->'to_flaky'->>'attempts')::int) || ' ' || sum((deliveries->'to_healthy'->>'attempts')::int)
	  FROM outbox_events_archive WHERE type LIKE 'tri.%'"),
	"$f->{received} $total", 'the archive keeps each endpoint\'s attempts');

my $st = receiver_stats($r, '/stalled');
my $st_rec = receiver_records($r, '/stalled');
my $st_acked = acked($st_rec);
is(scalar(grep { !$st_acked->{$_} && !$discarded{$_} } keys %published), 0,
	'stalled: every event not given up was received and answered 200');
is(scalar(grep { $st_acked->{$_} } keys %discarded), 0, 'stalled: none of the 50 given up was answered 200');
is("$st->{duplicates} $st->{bad_signatures} $st->{order_violations}", '0 0 0',
	'stalled: no re-send after a 2xx, signed, no order violation');
my %want_st = %want;
$want_st{k0} = [ grep { my $s = $_; !grep { $published{$_}[0] == $s } @discard } @{ $want{k0} } ];
is(join(' ', order_mismatches($st_rec, \%want_st)), '', 'stalled: at each key, the events arrived in publish order');
# The requests that timed out: the stalled endpoint held them (a real
# receiver might have acted on them: duplicates made by a timeout).
my %timed_out;
$timed_out{ $_->{id} }++ for grep { ($_->{answered} // '') eq 'stall' } @$st_rec;
my $timeout_dups = grep { $st_acked->{$_} } keys %timed_out;
my $st_attempts = sql("SELECT sum((deliveries->'to_stalled'->>'attempts')::int) FROM outbox_events_archive WHERE type LIKE 'tri.%'");
note("stalled: $st->{received} requests in all, " . ($st->{answered}{stall} // 0) . " timed out (held $stalled_before->{received} "
	  . "before it answered), for " . scalar(keys %timed_out) . " events, of which $timeout_dups were then answered 200: "
	  . "the duplicates a timeout made; $st_attempts attempts counted; answered "
	  . JSON::PP->new->canonical->encode($st->{answered}));
is($st->{answered}{200}, $total - 50, 'stalled: 9,950 answered 200, one each');
is($st->{received}, ($st->{answered}{200} // 0) + ($st->{answered}{stall} // 0),
	'stalled: every other request was one that timed out');
# A timed-out attempt is counted when claimed and received once its body is
# read: equal here, give or take one round of requests in flight.
cmp_ok($st_attempts, '>=', $st->{received}, 'stalled: every request received was an attempt the database counted');
cmp_ok($st_attempts - $st->{received}, '<=', 16, 'stalled: and the attempts are the requests received, give or take 16');

# ---- No crash, no restart, no lease run out ----
is(sink_pid($node, 'postgres'), $sink, 'the same sink worker ran throughout (no crash, no restart)');
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
unlike($log, qr/terminated by signal|PANIC|TRAP:|exited with exit code|server process .* was terminated/,
	'the server log shows no crash');
unlike($log, qr/took back \d+ deliveries|failed for good/, 'no lease ran out, no delivery failed for good');
note(sprintf('test ran %.1f s', time - $t_start));

$node->stop;
stop_receiver($r);
done_testing();
