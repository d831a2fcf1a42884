# Helpers of the webhook TAP tests: a node for the sink worker, its pid, and
# the test receiver (test/webhook/receiver.mjs) started and driven over
# loopback HTTP.
package OutboxWebhook;

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use Cwd ();
use File::Basename ();
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use IO::Socket::INET;
use Exporter 'import';
use OutboxTest;

our @EXPORT = qw(webhook_node sink_pid start_receiver stop_receiver receiver_config receiver_stats
  receiver_records receiver_url create_endpoint wait_until start_capture capture_requests sqlstate_of);

# ---- Webhooks: the sink worker and the test receiver (test/webhook) ----

# A relay node for webhook tests: loopback destinations allowed, small
# backoffs, and a long poll interval so that waking on commit is what
# delivers. %conf overrides or adds settings.
sub webhook_node
{
	my ($name, %conf) = @_;
	my %c = (
		'outbox.poll_interval' => '10min',
		'outbox.webhook_allow_private_addresses' => 'on',
		'outbox.base_backoff' => '50ms',
		'outbox.max_backoff' => '500ms',
		%conf);
	return relay_node($name, %c);
}

# The pid of the sink worker of a database, other than $not_pid if given
# (waits until it runs; the server may be restarting meanwhile).
sub sink_pid
{
	my ($node, $db, $not_pid) = @_;
	my $other = defined $not_pid ? " AND pid <> $not_pid" : '';
	my $pid;
	wait_until($PostgreSQL::Test::Utils::timeout_default, sub {
		my ($out, $err) = ('', '');
		my $rc = eval {
			$node->psql('postgres',
				"SELECT pid FROM pg_stat_activity WHERE backend_type = 'outbox sink' AND datname = '$db'$other",
				stdout => \$out, stderr => \$err);
		};
		$pid = $out if defined $rc && $rc == 0 && $out =~ /^\d+$/;
		usleep(30_000) unless $pid;
		return $pid;
	}) or die "no sink worker for database $db";
	return $pid;
}

# Poll a Perl condition every 20 ms until it is true or $timeout seconds
# pass; returns whether it became true.
sub wait_until
{
	my ($timeout, $cond) = @_;
	my $deadline = Time::HiRes::time() + $timeout;
	while (Time::HiRes::time() < $deadline)
	{
		return 1 if $cond->();
		usleep(20_000);
	}
	return $cond->() ? 1 : 0;
}

my @receivers;
# test/webhook/receiver.mjs, found from this module's folder (test/t).
my $receiver_script = Cwd::abs_path(File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../webhook/receiver.mjs');

# Start the test receiver (node test/webhook/receiver.mjs) on a free
# loopback port; it records to $dir/records.jsonl. Returns a handle.
sub start_receiver
{
	my $dir = PostgreSQL::Test::Utils::tempdir('receiver');
	my $script = $receiver_script;
	-f $script or die "no receiver at $script";
	my $ready = "$dir/ready";
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDIN, '<', '/dev/null';
		open STDOUT, '>', "$dir/receiver.out";
		open STDERR, '>', "$dir/receiver.err";
		exec 'node', $script, '--port', '0', '--host', '127.0.0.1',
		  '--ready-file', $ready, '--record', "$dir/records.jsonl"
		  or POSIX::_exit(127);
	}
	my $r = { pid => $pid, dir => $dir, http => HTTP::Tiny->new(timeout => 10, keep_alive => 0) };
	push @receivers, $r;
	wait_until(15, sub { -s $ready }) or die "the receiver did not start (see $dir)";
	open my $fh, '<', $ready or die "$ready: $!";
	my $txt = do { local $/; <$fh> };
	close $fh;
	$r->{port} = JSON::PP::decode_json($txt)->{port} or die "no port in $ready";
	return $r;
}

# SIGTERM to the receiver (by its pid), then SIGKILL after 5 s.
sub stop_receiver
{
	my ($r) = @_;
	return unless $r->{pid};
	kill 'TERM', $r->{pid};
	my $gone = wait_until(5, sub { waitpid($r->{pid}, POSIX::WNOHANG()) != 0 });
	unless ($gone)
	{
		kill 'KILL', $r->{pid};
		waitpid($r->{pid}, 0);
	}
	$r->{pid} = undef;
	return;
}

END
{
	local $?;
	stop_receiver($_) for grep { $_->{pid} } @receivers;
}

sub receiver_url
{
	my ($r, $path) = @_;
	return "http://127.0.0.1:$r->{port}$path";
}

# An endpoint $name on the receiver's $path (extra arguments of
# outbox_create_endpoint in $extra, SQL text), the receiver told its secret
# and the config $cfg for the path; returns the secret.
sub create_endpoint
{
	my ($node, $r, $name, $path, $cfg, $extra) = @_;
	my $secret = $node->safe_psql('postgres', "SELECT outbox_create_endpoint('$name', '"
		  . receiver_url($r, $path) . "'" . ($extra ? ", $extra" : '') . ")");
	receiver_config($r, $path, { secrets => [$secret], %{ $cfg // {} } });
	return $secret;
}

sub _receiver_call
{
	my ($r, $method, $path, $body) = @_;
	my $res = $r->{http}->request($method, "http://127.0.0.1:$r->{port}$path",
		defined $body
		? { content => JSON::PP::encode_json($body), headers => { 'content-type' => 'application/json' } }
		: {});
	die "receiver $method $path: $res->{status} $res->{content}" unless $res->{success};
	return JSON::PP::decode_json($res->{content});
}

# Merge a config into the receiver's path ('/healthy'): secrets, mode, ...
sub receiver_config
{
	my ($r, $path, $cfg) = @_;
	return _receiver_call($r, 'PUT', "/_control$path", $cfg);
}

# The counters of one path: received, unique_ids, duplicates,
# bad_signatures, answered {...}, order_violations.
sub receiver_stats
{
	my ($r, $path) = @_;
	return _receiver_call($r, 'GET', "/_stats?path=$path");
}

# The records of one path (array of hashes).
sub receiver_records
{
	my ($r, $path) = @_;
	return _receiver_call($r, 'GET', "/_records?path=$path");
}

# A one-purpose HTTP server (a forked child) that answers 200 with
# "Connection: close" and keeps each raw request: its headers (lower-case
# names) and its exact body, one JSON line each, for the checks the receiver
# cannot make (the body's fields, the signature header's entries). Stops
# after $max requests or at the end of the test.
sub start_capture
{
	my ($max) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir('capture');
	my $srv = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1, Proto => 'tcp')
	  or die "capture listen: $!";
	my $port = $srv->sockport;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>', "$dir/capture.out";
		open STDERR, '>', "$dir/capture.err";
		$SIG{ALRM} = sub { POSIX::_exit(0) };
		alarm 300;
		for my $n (1 .. $max)
		{
			my $c = $srv->accept or last;
			my (%h, $line);
			my $first = <$c>;
			while (defined($line = <$c>))
			{
				$line =~ s/\r?\n$//;
				last if $line eq '';
				my ($k, $v) = split /:\s*/, $line, 2;
				$h{ lc $k } = $v;
			}
			my $body = '';
			my $len = $h{'content-length'} // 0;
			while (length($body) < $len)
			{
				my $got = read($c, $body, $len - length($body), length($body));
				last unless $got;
			}
			open my $out, '>>', "$dir/requests.jsonl";
			print $out JSON::PP->new->canonical->encode({ request => $first, headers => \%h, body => $body }), "\n";
			close $out;
			print $c "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
			close $c;
		}
		POSIX::_exit(0);
	}
	close $srv;
	my $r = { pid => $pid, dir => $dir, port => $port };
	push @receivers, $r;
	return $r;
}

# The requests a capture server got so far.
sub capture_requests
{
	my ($r) = @_;
	open my $fh, '<', "$r->{dir}/requests.jsonl" or return [];
	my @req = map { JSON::PP::decode_json($_) } grep { /\S/ } <$fh>;
	close $fh;
	# The body as the bytes sent (decode_json gave characters).
	utf8::encode($_->{body}) for @req;
	return \@req;
}

# The SQLSTATE a statement fails with ('' if it succeeds).
sub sqlstate_of
{
	my ($node, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	$node->psql($db, "\\set VERBOSITY verbose\n$sql", stdout => \$out, stderr => \$err, on_error_stop => 1);
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : '';
}

1;
