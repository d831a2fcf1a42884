# Helpers of the Kafka TAP tests: librdkafka's mock cluster
# (test/kafka/mockcluster.c) in a process of its own, driven by lines on its
# stdin; records read back with kcat; consumer-group members
# (test/kafka/consumer.c). Both programs are built into the test's temporary
# folder.
package OutboxKafka;

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use IPC::Run ();
use JSON::PP;
use Cwd ();
use File::Basename ();
use Exporter 'import';

our @EXPORT = qw(start_mock mock_cmd stop_mock read_topic consumer_bin run_consumers);

my $kafka_dir = Cwd::abs_path(File::Basename::dirname(Cwd::abs_path(__FILE__)) . '/../kafka');
my $tmp;
my %built;

sub _build
{
	my ($name) = @_;
	$tmp //= PostgreSQL::Test::Utils::tempdir('kafka');
	return $built{$name} if $built{$name};
	my $libs = `pkg-config --cflags --libs rdkafka`;
	chomp $libs;
	system("cc -O1 -o $tmp/$name $kafka_dir/$name.c $libs") == 0 or BAIL_OUT("cannot build $kafka_dir/$name.c");
	return $built{$name} = "$tmp/$name";
}

# Start a mock cluster of $brokers brokers with the topics named
# ('name:partitions'); returns a handle whose {bootstraps} are its servers.
sub start_mock
{
	my ($brokers, @topics) = @_;
	my $bin = _build('mockcluster');
	my $m = { in => '', out => '' };
	$m->{h} = IPC::Run::start([ $bin, $brokers, @topics ], '<', \$m->{in}, '>', \$m->{out},
		'2>', "$tmp/mockcluster.log");
	$m->{bootstraps} = _wait_lines($m, 1);
	return $m;
}

sub _lines { my ($m) = @_; my @l = split /\n/, $m->{out}; return @l; }

sub _wait_lines
{
	my ($m, $n) = @_;
	my $deadline = time + 10;
	while (scalar(_lines($m)) < $n)
	{
		$m->{h}->pump_nb;
		BAIL_OUT('the mock cluster does not answer') if time > $deadline;
		usleep(10_000);
	}
	return (_lines($m))[ $n - 1 ];
}

# A command to the cluster ('down all', 'rtt 1 500', ...); its answer line.
sub mock_cmd
{
	my ($m, $cmd) = @_;
	my $n = scalar(_lines($m));
	$m->{in} .= "$cmd\n";
	return _wait_lines($m, $n + 1);
}

sub stop_mock
{
	my ($m) = @_;
	$m->{in} .= "quit\n";
	$m->{h}->finish;
	return;
}

# Every record of a topic as kcat reads it (-J: topic, partition, offset,
# ts, headers [name, value, ...], key, payload); each gets {id}, its id header.
sub read_topic
{
	my ($m, $topic) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'kcat', '-C', '-b', $m->{bootstraps}, '-t', $topic, '-o', 'beginning', '-e', '-J', '-q' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	my @r = map { decode_json($_) } grep { /^\{/ } split /\n/, $out;
	for my $r (@r)
	{
		my %h = @{ $r->{headers} // [] };
		$r->{id} = $h{id};
		$r->{hdr} = \%h;
	}
	return \@r;
}

sub consumer_bin { return _build('consumer'); }

# Run $n members of consumer group $group at once on the topics; each stops
# after $idle_ms without a record. Returns a list of array refs, one per
# member, of its records [topic, partition, offset, id, key]. With
# $kill_after (a number of records), the first member is killed (SIGKILL)
# once it printed that many, before it commits the rest.
sub run_consumers
{
	my ($m, $group, $n, $idle_ms, $topics, $kill_after) = @_;
	my $bin = consumer_bin();
	my @members;
	for my $i (1 .. $n)
	{
		my $c = { out => '', err => '' };
		$c->{h} = IPC::Run::start([ $bin, $m->{bootstraps}, $group, $idle_ms, 120_000, @$topics ],
			'>', \$c->{out}, '2>', \$c->{err}, IPC::Run::timeout(180));
		push @members, $c;
	}
	if (defined $kill_after)
	{
		my $c = $members[0];
		my $deadline = time + 60;
		while (time < $deadline && $c->{h}->pumpable)
		{
			$c->{h}->pump_nb;
			last if (() = $c->{out} =~ /\n/g) >= $kill_after;
			usleep(1_000);
		}
		$c->{h}->signal('KILL');
	}
	my @res;
	for my $c (@members)
	{
		eval { $c->{h}->finish; };
		push @res, [ map { [ split / / ] } grep { /\S/ } split /\n/, $c->{out} ];
	}
	return @res;
}

1;
