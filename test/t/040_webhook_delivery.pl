# The HTTP sink delivers webhooks: 200 events reach a healthy endpoint once
# each, signed (Standard Webhooks) and in order per ordering key, and are
# archived completed; a 500-answering endpoint is retried until it answers;
# a 410 disables its endpoint (deliveries kept) until outbox_resume_endpoint;
# a 429 with Retry-After is honoured; a rotated secret signs with both
# secrets during the grace period; bad endpoint input is refused with its
# SQLSTATE and changes nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use FindBin;
use lib $FindBin::RealBin;
use OutboxTest;
use OutboxWebhook;

my $node = webhook_node('whdelivery',
	'outbox.max_retries' => '100',
	'outbox.webhook_breaker_failures' => '1000');
setup_relay_db($node, 'postgres');
my $r = start_receiver();

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub wait_sql
{
	my ($query, $expected, $what) = @_;
	wait_for_relay($node, 'postgres', $query, $expected, $what);
	return;
}

# The archived events of a type whose delivery to a subscription completed.
sub archived_completed
{
	my ($type_like, $sub) = @_;
	return "SELECT count(*) FROM outbox_events_archive WHERE type LIKE '$type_like'"
	  . " AND deliveries->'$sub'->>'status' = 'completed'";
}

# ---- A healthy endpoint: 200 events, once each, signed, in key order ----
my $secret = sql("SELECT outbox_create_endpoint('healthy', '" . receiver_url($r, '/healthy') . "')");
like($secret, qr{^whsec_[A-Za-z0-9+/]+=*$}, 'outbox_create_endpoint returns a whsec_ secret');
receiver_config($r, '/healthy', { secrets => [$secret] });
sql("SELECT outbox_subscribe_webhook('to_healthy', 'order.*', 'healthy')");
is(sql("SELECT sink || ' ' || endpoint || ' ' || (handler IS NULL) FROM outbox_subscriptions WHERE name = 'to_healthy'"),
	'http healthy true', 'the subscription is an http one on the endpoint, with no handler');

my $sink = sink_pid($node, 'postgres');
ok($sink > 0, "pg_stat_activity shows a backend_type 'outbox sink' (pid $sink)");

my $t0 = time;
sql(q{BEGIN;
	SELECT count(outbox_publish('order.created', jsonb_build_object('i', i, 'name', 'n' || i),
		CASE WHEN i % 4 = 0 THEN 'key' || (i % 3) END))
	  FROM generate_series(1, 200) i;
	COMMIT;});
ok(wait_until(60, sub { receiver_stats($r, '/healthy')->{unique_ids} >= 200 }),
	'the receiver got the 200 events');
note(sprintf('200 events delivered %.2f s after commit (poll interval 10 min)', time - $t0));
wait_sql(archived_completed('order.created', 'to_healthy'), 200,
	'the 200 events are archived with their delivery completed');
usleep(300_000);    # a late re-send would show now
my $st = receiver_stats($r, '/healthy');
is($st->{received}, 200, 'each event received exactly once');
is($st->{unique_ids}, 200, '200 distinct webhook-ids');
is($st->{duplicates}, 0, 'no duplicates');
is($st->{bad_signatures}, 0, 'every signature valid');
is($st->{order_violations}, 0, 'no order violation per ordering key');
is($st->{answered}{200}, 200, 'all answered 200');

# The webhook-id is the event id, and the body's id, type and seq are the event's.
my %arch = map { my @f = split /\|/; ($f[0] => [ @f[ 1 .. 3 ] ]) } split /\n/,
  sql("SELECT id, type, seq, coalesce(ordering_key, '') FROM outbox_events_archive WHERE type = 'order.created'");
my ($good, $bad) = (0, 0);
for my $rec (@{ receiver_records($r, '/healthy') })
{
	my $ev = $arch{ $rec->{id} };
	if ($ev && $rec->{body_id} eq $rec->{id} && $rec->{type} eq $ev->[0] && $rec->{seq} == $ev->[1]
		&& ($rec->{ordering_key} // '') eq $ev->[2])
	{
		$good++;
	}
	else
	{
		$bad++;
		diag('unexpected record: ' . JSON::PP->new->canonical->encode($rec)) if $bad <= 3;
	}
}
is("$good $bad", '200 0', 'webhook-id = body id = event id; type, seq and ordering_key are the event\'s');

my $es = sql("SELECT state, pending, in_flight, last_success_at IS NOT NULL, breaker
	FROM outbox_endpoint_stats() WHERE endpoint = 'healthy'");
is($es, 'enabled|0|0|t|closed', 'outbox_endpoint_stats(): healthy is enabled, nothing pending, last_success_at set');

# ---- The body and headers, byte for byte (a capture server) ----
my $cap = start_capture(5);
my $csecret = sql("SELECT outbox_create_endpoint('capture', 'http://127.0.0.1:$cap->{port}/c?token=x',
	headers => '{\"x-static\": \"static-value\"}')");
sql("SELECT outbox_subscribe_webhook('to_capture', 'capture.*', 'capture')");
my $shown = sql("SELECT url FROM outbox_endpoint_stats() WHERE endpoint = 'capture'");
like($shown, qr{^http://127\.0\.0\.1:$cap->{port}/c(\?\S*)?$}, "outbox_endpoint_stats() shows the URL ($shown)");
unlike($shown, qr/token/, 'without its query');
my $cid = sql("BEGIN; SELECT outbox_publish('capture.one', '{\"a\": [1, 2], \"s\": \"caf\\u00e9\"}', 'k1',
	'{\"h\": \"v\"}'); COMMIT;");
ok(wait_until(30, sub { @{ capture_requests($cap) } >= 1 }), 'the capture endpoint got a request');
my $req = capture_requests($cap)->[0] // { headers => {}, body => '{}' };
like($req->{request}, qr{^POST /c\?token=x HTTP/1\.1}, 'a POST to the endpoint\'s URL');
my $h = $req->{headers};
like($h->{'content-type'} // '', qr{^application/json}, 'content-type application/json');
is($h->{'webhook-id'}, $cid, 'webhook-id is the event id');
like($h->{'webhook-timestamp'} // '', qr/^\d+$/, 'webhook-timestamp is integer seconds');
cmp_ok(abs(($h->{'webhook-timestamp'} // 0) - time), '<', 60, 'and close to now');
is($h->{'x-static'}, 'static-value', 'the endpoint\'s static header is sent');
my $body = eval { JSON::PP->new->utf8->decode($req->{body}) } // {};
is($body->{id}, $cid, 'body id');
is($body->{type}, 'capture.one', 'body type');
is(JSON::PP->new->canonical->encode($body->{payload} // {}), "{\"a\":[1,2],\"s\":\"caf\x{e9}\"}", 'body payload');
is($body->{ordering_key}, 'k1', 'body ordering_key');
is(JSON::PP->new->canonical->encode($body->{headers} // {}), '{"h":"v"}', 'body headers (the event\'s)');
ok(defined $body->{occurred_at} && defined $body->{seq}, 'body occurred_at and seq');
my $ts = $h->{'webhook-timestamp'} // 0;
my $lit = sub { my $s = shift; $s =~ s/'/''/g; "'$s'" };
is($h->{'webhook-signature'},
	sql("SELECT outbox_webhook_signature(" . $lit->($csecret) . ", '$cid', $ts, " . $lit->($req->{body}) . ")"),
	'webhook-signature is the one signature of the exact body sent');

# Rotation on the capture endpoint: two v1 entries, the new and the old.
my $cnew = sql("SELECT outbox_rotate_endpoint_secret('capture')");
my $cid2 = sql("BEGIN; SELECT outbox_publish('capture.two', '{}'); COMMIT;");
ok(wait_until(30, sub { @{ capture_requests($cap) } >= 2 }), 'the capture endpoint got a second request');
my $req2 = capture_requests($cap)->[-1] // { headers => {}, body => '' };
my @sigs = split / /, $req2->{headers}{'webhook-signature'} // '';
is(scalar(grep { /^v1,/ } @sigs), 2, 'after rotation the signature header has two v1 entries');
my $ts2 = $req2->{headers}{'webhook-timestamp'} // 0;
my %want = map {
	(sql("SELECT outbox_webhook_signature(" . $lit->($_) . ", '$cid2', $ts2, " . $lit->($req2->{body}) . ")") => 1)
} ($cnew, $csecret);
is(scalar(grep { $want{$_} } @sigs), 2, 'one by the new secret, one by the old');

# ---- Rotation on the receiver: only the new secret, then only the old ----
my $new = sql("SELECT outbox_rotate_endpoint_secret('healthy')");
like($new, qr/^whsec_/, 'outbox_rotate_endpoint_secret returns a new secret');
isnt($new, $secret, 'a different one');
receiver_config($r, '/healthy', { secrets => [$new] });
sql("BEGIN; SELECT count(outbox_publish('order.rotated', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");
ok(wait_until(30, sub { receiver_stats($r, '/healthy')->{unique_ids} >= 205 }), 'five events after rotation received');
is(receiver_stats($r, '/healthy')->{bad_signatures}, 0, 'a receiver knowing only the new secret verifies them');
# The receiver replaces arrays on merge: only the old secret now.
receiver_config($r, '/healthy', { secrets => [$secret] });
sql("BEGIN; SELECT count(outbox_publish('order.rotated2', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");
ok(wait_until(30, sub { receiver_stats($r, '/healthy')->{unique_ids} >= 210 }), 'five more received');
is(receiver_stats($r, '/healthy')->{bad_signatures}, 0,
	'a receiver knowing only the old secret verifies them too (grace period)');
wait_sql(archived_completed('order.rotated%', 'to_healthy'), 10, 'the ten are archived completed');

# ---- An endpoint answering 500 for a while ----
my $fsecret = sql("SELECT outbox_create_endpoint('failing', '" . receiver_url($r, '/failing') . "')");
receiver_config($r, '/failing', { secrets => [$fsecret], mode => 'status', status => 500 });
sql("SELECT outbox_subscribe_webhook('to_failing', 'fail.*', 'failing')");
sql("BEGIN; SELECT count(outbox_publish('fail.x', jsonb_build_object('i', i))) FROM generate_series(1, 5) i; COMMIT;");
ok(wait_until(30, sub { receiver_stats($r, '/failing')->{received} >= 15 }), 'the failing endpoint is retried');
wait_sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'to_failing' AND attempts > 1
	AND last_status = 500 AND last_error IS NOT NULL", 5,
	'while failing: attempts > 1, last_status 500 and last_error recorded');
wait_sql("SELECT last_error IS NOT NULL AND last_error_at IS NOT NULL AND consecutive_failures > 0 AND failed = 0
	FROM outbox_endpoint_stats() WHERE endpoint = 'failing'", 't',
	'outbox_endpoint_stats() shows the last error, the consecutive failures, none failed for good');
receiver_config($r, '/failing', { mode => 'ok', status => 200 });
wait_sql(archived_completed('fail.x', 'to_failing'), 5, 'once it answers 200 the five are delivered');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'fail.x' AND (deliveries->'to_failing'->>'attempts')::int > 1"),
	'5', 'each after more than one attempt');
is(receiver_stats($r, '/failing')->{unique_ids}, 5, 'five distinct webhook-ids (the same id on every attempt)');
is(receiver_stats($r, '/failing')->{bad_signatures}, 0, 'retries are signed too');

# ---- 410 Gone: the endpoint is disabled, its deliveries kept ----
my $gsecret = sql("SELECT outbox_create_endpoint('gone', '" . receiver_url($r, '/gone') . "')");
receiver_config($r, '/gone', { secrets => [$gsecret], mode => 'status', status => 410 });
sql("SELECT outbox_subscribe_webhook('to_gone', 'gone.*', 'gone')");
sql("BEGIN; SELECT count(outbox_publish('gone.x', jsonb_build_object('i', i))) FROM generate_series(1, 3) i; COMMIT;");
wait_sql("SELECT state FROM outbox_endpoint_stats() WHERE endpoint = 'gone'", 'disabled', 'a 410 disables the endpoint');
like(sql("SELECT disabled_reason FROM outbox_endpoint_stats() WHERE endpoint = 'gone'"), qr/410/,
	'the reason mentions 410');
is(sql("SELECT state FROM outbox_endpoints WHERE name = 'gone'"), 'disabled', 'outbox_endpoints.state too');
my $got_gone = receiver_stats($r, '/gone')->{received};
sleep 1;
is(receiver_stats($r, '/gone')->{received}, $got_gone, "nothing more is sent to a disabled endpoint ($got_gone sent)");
is(sql("SELECT count(*) FROM outbox_deliveries WHERE subscription = 'to_gone' AND status <> 'failed' AND completed_on IS NULL"),
	'3', 'its three deliveries stay pending (not dropped, not failed)');
is(sql("SELECT count(*) FROM outbox_events_archive WHERE type = 'gone.x'"), '0', 'none archived');
receiver_config($r, '/gone', { mode => 'ok', status => 200 });
sql("SELECT outbox_resume_endpoint('gone')");
is(sql("SELECT state FROM outbox_endpoint_stats() WHERE endpoint = 'gone'"), 'enabled', 'outbox_resume_endpoint re-enables it');
wait_sql(archived_completed('gone.x', 'to_gone'), 3, 'and its deliveries are delivered');

# ---- 429 with Retry-After: 2 ----
my $tsecret = sql("SELECT outbox_create_endpoint('throttled', '" . receiver_url($r, '/throttled') . "')");
receiver_config($r, '/throttled', { secrets => [$tsecret], mode => 'status', status => 429, retry_after => 2 });
sql("SELECT outbox_subscribe_webhook('to_throttled', 'throttle.*', 'throttled')");
sql("BEGIN; SELECT outbox_publish('throttle.x', '{}'); COMMIT;");
ok(wait_until(30, sub { receiver_stats($r, '/throttled')->{received} >= 1 }), 'the throttled endpoint got the event');
receiver_config($r, '/throttled', { mode => 'ok', status => 200 });
wait_sql(archived_completed('throttle.x', 'to_throttled'), 1, 'it is delivered after the 429');
my @tr = @{ receiver_records($r, '/throttled') };
is(scalar(@tr), 2, 'in two attempts');
my $gap = @tr >= 2 ? ($tr[1]{at} - $tr[0]{at}) / 1000 : 0;
note(sprintf('429 Retry-After 2: next attempt %.3f s later', $gap));
cmp_ok($gap, '>=', 1.9, 'the second attempt is not before Retry-After (2 s)');
cmp_ok($gap, '<', 10, 'and not much later');

# ---- Bad input: its SQLSTATE, and nothing changed ----
my $snapshot = "SELECT (SELECT string_agg(name || url || headers::text || timeout_ms || max_in_flight || state, ',' ORDER BY name)
	FROM outbox_endpoints) || '/' || (SELECT string_agg(name || coalesce(endpoint, ''), ',' ORDER BY name)
	FROM outbox_subscriptions)";
my $before = sql($snapshot);
my $u = receiver_url($r, '/x');
my @bad = (
	[ "SELECT outbox_create_endpoint('b1', 'ftp://127.0.0.1/x')", '22023', 'an ftp:// URL' ],
	[ "SELECT outbox_create_endpoint('b2', 'http://user:pw\@127.0.0.1/x')", '22023', 'a URL with userinfo' ],
	[ "SELECT outbox_create_endpoint('b3', '$u', max_in_flight => 0)", '22023', 'max_in_flight 0' ],
	[ "SELECT outbox_create_endpoint('b4', NULL)", '22004', 'a NULL url' ],
	[ "SELECT outbox_create_endpoint(NULL, '$u')", '22004', 'a NULL name' ],
	[ "SELECT outbox_create_endpoint('b5', '$u#frag')", '22023', 'a URL with a fragment' ],
	[ "SELECT outbox_create_endpoint('b6', 'http:///nohost')", '22023', 'a URL without host' ],
	[ "SELECT outbox_create_endpoint('b7', '$u', headers => '{\"a\": 1}')", '22023', 'a header value not a string' ],
	[ "SELECT outbox_create_endpoint('b8', '$u', timeout => '50 ms')", '22023', 'a timeout below 100 ms' ],
	[ "SELECT outbox_create_endpoint('b9', '$u', max_in_flight => 1001)", '22023', 'max_in_flight 1001' ],
	[ "SELECT outbox_create_endpoint('healthy', '$u')", '42710', 'a duplicate endpoint name' ],
	[ "SELECT outbox_alter_endpoint('healthy', url => 'ftp://127.0.0.1/x')", '22023', 'altering to an ftp:// URL' ],
	[ "SELECT outbox_subscribe_webhook('s1', 'x.*', 'nosuch')", '42704', 'an unknown endpoint in outbox_subscribe_webhook' ],
	[ "SELECT outbox_drop_endpoint('healthy')", '2BP01', 'outbox_drop_endpoint while subscribed' ],
);
for my $case (@bad)
{
	is(sqlstate_of($node, 'postgres', $case->[0]), $case->[1], "$case->[2]: $case->[1]");
}
is(sql($snapshot), $before, 'endpoints and subscriptions unchanged after the refused calls');

$node->stop;
stop_receiver($r);
done_testing();
