# Shared helpers of the core's TAP tests (001-019): crash safety, concurrent
# consumers, dump and restore. No background worker is involved in them.
package OutboxCore;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Spec;
use IPC::Run ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(core_node start_psql_script write_file postmaster_pid crash_server wait_for);

# A new node configured as the isolation tests are (test/regress.conf:
# shared_preload_libraries, and whatever turns the relay worker off), plus
# the extra settings given.
sub core_node
{
	my ($name, $extra_conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $regress_conf = File::Spec->catfile(dirname(__FILE__), '..', 'regress.conf');
	$node->append_conf('postgresql.conf', slurp_file($regress_conf));
	$node->append_conf('postgresql.conf', $extra_conf) if defined $extra_conf;
	return $node;
}

sub write_file
{
	my ($path, $text) = @_;
	open my $fh, '>', $path or die "cannot write $path: $!";
	print $fh $text;
	close $fh;
	return $path;
}

# Start psql on a script file in the background, as a real client session,
# its output going to the files $out and $err (files, not pipes: a client
# must never stall because nobody reads its output). Returns the IPC::Run
# harness.
sub start_psql_script
{
	my ($node, $dbname, $file, $out, $err, @vars) = @_;
	my @cmd = (
		$node->installed_command('psql'), '-X', '-q', '-A', '-t',
		'-d', $node->connstr($dbname), '-f', $file,
		map { ('-v', $_) } @vars);
	return IPC::Run::start(\@cmd, '<', \undef, '>', $out, '2>', $err);
}

sub postmaster_pid
{
	my ($node) = @_;
	my $pidfile = $node->data_dir . '/postmaster.pid';
	return undef unless -f $pidfile;
	my ($pid) = split /\n/, slurp_file($pidfile);
	return $pid;
}

# Processes whose parent is $ppid (from /proc).
sub children_of
{
	my ($ppid) = @_;
	my @kids;
	opendir my $dh, '/proc' or die "cannot read /proc: $!";
	for my $pid (grep { /^\d+$/ } readdir $dh)
	{
		open my $fh, '<', "/proc/$pid/stat" or next;
		my $stat = <$fh>;
		close $fh;
		next unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
		push @kids, $pid if $1 == $ppid;
	}
	closedir $dh;
	return @kids;
}

# Until it is reaped, even a zombie holds its PID, and a new postmaster
# would take the old one's PID in postmaster.pid for a running server.
sub alive
{
	my ($pid) = @_;
	return -e "/proc/$pid";
}

# kill -9 the postmaster (all_processes: and every server process with it,
# at the same instant, as when the machine's server processes all die), then
# wait until no process of the old server is left, so that it can restart.
sub crash_server
{
	my ($node, %opts) = @_;
	my $pm = postmaster_pid($node) or die "no postmaster.pid";
	my @kids = children_of($pm);
	if ($opts{all_processes})
	{
		kill 'KILL', $pm, @kids;
	}
	$node->kill9;    # SIGKILL to the postmaster; the node now counts as stopped
	# Without their postmaster, the other server processes exit on their own.
	my $start = time;
	while (my @left = grep { alive($_) } ($pm, @kids))
	{
		# Should a server process outlive its postmaster for long, kill it.
		kill 'KILL', grep { $_ != $pm } @left if time - $start > 10;
		die "server processes @left still exist a minute after the crash" if time - $start > 60;
		select(undef, undef, undef, 0.05);
	}
	return scalar @kids;
}

# Poll $cond->() every 50 ms until it is true or $seconds pass.
sub wait_for
{
	my ($seconds, $cond) = @_;
	my $deadline = time + $seconds;
	while (time < $deadline)
	{
		return 1 if $cond->();
		select(undef, undef, undef, 0.05);
	}
	return $cond->();
}

1;
