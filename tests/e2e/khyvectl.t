#!/usr/bin/perl
# SPDX-License-Identifier: BSD-2-Clause
#
# khyvectl(8) without a running VM: usage errors, "no such VM", RUNDIR
# resolution, and the wire side against fake VMs (small Perl servers on
# RUNDIR/NAME/ctl.sock that log each request and answer from a table):
# request formats, bhyvectl's fixed action order, replies printed as is,
# one-line errors, malformed replies.  Live-VM checks live elsewhere.
#
# Uses $KHYVE_BUILD/khyvectl (default build/khyvectl).  Runs in a private
# RUNDIR ($KHYVE_RUNDIR), never /run/khyve.
use strict;
use warnings;
use Cwd qw(getcwd);
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Test::More;

my $build = $ENV{KHYVE_BUILD} // 'build';
my $ctl = "$build/khyvectl";
plan skip_all => "$ctl not built" unless -x $ctl;

my $rundir = tempdir('khyvectl-t.XXXXXX', TMPDIR => 1, CLEANUP => 1);
$ENV{KHYVE_RUNDIR} = $rundir;
delete $ENV{XDG_RUNTIME_DIR};

# Run khyvectl; returns (exit status, stdout, stderr).
sub run_ctl {
	my @args = @_;
	my $out = "$rundir/out.$$";
	my $err = "$rundir/err.$$";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		open(STDOUT, '>', $out) or die;
		open(STDERR, '>', $err) or die;
		exec($ctl, @args) or exit(127);
	}
	waitpid($pid, 0);
	my $rc = $? >> 8;
	local $/;
	open(my $fo, '<', $out) or die;
	my $o = <$fo>;
	open(my $fe, '<', $err) or die;
	my $e = <$fe>;
	return ($rc, $o // '', $e // '');
}

# One line "khyvectl: ..." on stderr, nothing on stdout, exit 1.
sub fails_like {
	my ($args, $re, $name) = @_;
	my ($rc, $o, $e) = run_ctl(@$args);
	is($rc, 1, "$name: exit 1");
	like($e, qr/\Akhyvectl: [^\n]*\n\z/, "$name: one line on stderr");
	like($e, $re, "$name: message") or diag("stderr: $e");
	is($o, '', "$name: nothing on stdout");
}

# ---- usage errors -------------------------------------------------------
fails_like([], qr/missing --vm=NAME/, 'no --vm');
fails_like(['--get-stats'], qr/missing --vm=NAME/, 'action without --vm');
fails_like(['--vm=x', '--bogus'], qr/bad option --bogus/, 'unknown option');
fails_like(['--vm=x', '--destroy=now'], qr/bad option --destroy=now/,
	   'value for a flag');
fails_like(['--vm=x', '-q'], qr/unknown option -q/, 'unknown short option');
fails_like(['--vm=x', '--suspend'], qr/--suspend needs a value/,
	   'missing value');
fails_like(['--vm=x', '--cpu=abc', '--get-rip'], qr/--cpu=abc: not a vCPU/,
	   'bad --cpu');
fails_like(['--vm=x', '--cpu=-1', '--get-rip'], qr/--cpu=-1: not a vCPU/,
	   'negative --cpu');
fails_like(['--vm=x', '--cpu=65536', '--get-rip'], qr/--cpu=65536/,
	   'too large --cpu');
fails_like(['--vm=../etc', '--destroy'], qr/--vm=\.\.\/etc: not a valid VM/,
	   'path in --vm');
fails_like(['--vm=', '--destroy'], qr/not a valid VM name/, 'empty --vm');
fails_like(['--vm=x', 'extra'], qr/unexpected argument 'extra'/,
	   'positional argument');
fails_like(['--vm=x', '--rundir='], qr/--rundir: empty/, 'empty --rundir');
fails_like(['--vm=x', "--suspend=a\nb"], qr/control character/,
	   'newline in --suspend file');

{
	my ($rc, $o, $e) = run_ctl('--help');
	is($rc, 0, '--help: exit 0');
	like($o, qr/\AUsage: khyvectl --vm=<vmname>/, '--help: usage');
	for my $opt (qw(--destroy --get-stats --get-all --get-rip --get-cr3
			--get-efer --get-rflags --force-reset --force-poweroff
			--power-button --suspend=<file> --cpu= --rundir=)) {
		like($o, qr/\Q$opt\E/, "--help lists $opt");
	}
	is($e, '', '--help: nothing on stderr');
	($rc, $o) = run_ctl('-h');
	is($rc, 0, '-h: exit 0');
}

# ---- no such VM, RUNDIR resolution --------------------------------------
fails_like(['--vm=nosuch', '--get-stats'],
	   qr/\Akhyvectl: vm nosuch: no such VM \(\Q$rundir\E\/nosuch\/ctl\.sock\)\n\z/,
	   'no such VM');
fails_like(['--vm=nosuch'], qr/vm nosuch: no such VM/,
	   'no action: existence check fails');
fails_like(['--vm=nosuch', "--rundir=$rundir/other/", '--destroy'],
	   qr/no such VM \(\Q$rundir\E\/other\/nosuch\/ctl\.sock\)/,
	   '--rundir wins over $KHYVE_RUNDIR');
{
	local $ENV{KHYVE_RUNDIR};
	delete $ENV{KHYVE_RUNDIR};
	local $ENV{XDG_RUNTIME_DIR} = "$rundir/xdg";
	my $want = $> == 0 ? '/run/khyve' : "$rundir/xdg/khyve";
	fails_like(['--vm=nosuch', '--destroy'],
		   qr/no such VM \(\Q$want\E\/nosuch\/ctl\.sock\)/,
		   'default rundir (' . ($> == 0 ? 'root' : 'user') . ')');
}
{
	# A socket left by a killed VM: nobody listens.
	mkdir("$rundir/dead", 0700);
	my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM,
				      Local => "$rundir/dead/ctl.sock",
				      Listen => 1) or die "listen: $!";
	close($s);
	fails_like(['--vm=dead', '--destroy'], qr/vm dead: no such VM/,
		   'stale socket is no such VM');
}

# ---- fake VMs -----------------------------------------------------------
my @kids;
END { kill('KILL', @kids) if @kids; }

# Serve RUNDIR/NAME/ctl.sock; log requests to RUNDIR/NAME.log; answer with
# $reply->(line).
sub fake_vm {
	my ($name, $reply) = @_;
	mkdir("$rundir/$name", 0700);
	my $srv = IO::Socket::UNIX->new(Type => SOCK_STREAM,
					Local => "$rundir/$name/ctl.sock",
					Listen => 8) or die "listen: $!";
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		$SIG{ALRM} = sub { exit(0) };
		alarm(60);
		while (my $c = $srv->accept()) {
			my $line = <$c> // '';
			chomp($line);
			open(my $log, '>>', "$rundir/$name.log") or die;
			print $log "$line\n";
			close($log);
			print $c $reply->($line);
			close($c);
		}
		exit(0);
	}
	close($srv);
	push(@kids, $pid);
}

sub requests {
	my ($name) = @_;
	open(my $f, '<', "$rundir/$name.log") or return ();
	my @l = map { chomp; $_ } <$f>;
	close($f);
	unlink("$rundir/$name.log");
	return @l;
}

fake_vm('fake', sub {
	my ($l) = @_;
	return "ok\npong\n" if $l eq 'ping';
	return "ok\n$2\[$1\]\t\t0x00000000000fff0\n"
		if $l =~ /^get-reg (\d+) (\w+)$/;
	return "ok\nvcpu0\nexits\t42\n" if $l eq 'get-stats';
	return "ok\nall of cpu $1\n" if $l =~ /^get-all (\d+)$/;
	return "ok\n" if $l =~ /^(force-reset|destroy|power-button)$/;
	return "err 16\n" if $l eq 'force-poweroff';
	return "err 95\nsuspend is not supported\nyet\n" if $l =~ /^suspend /;
	return "err 38\nunknown command\n";
});

{
	my ($rc, $o, $e) = run_ctl('--vm=fake');
	is($rc, 0, 'no action: existence check succeeds');
	is($o, '', 'no action: silent');
	is_deeply([requests('fake')], ['ping'], 'no action sends ping');

	($rc, $o, $e) = run_ctl('--vm=fake', '--destroy', '--force-reset',
				'--get-stats', '--cpu=2', '--get-rip',
				'--get-cr3', '--power-button');
	is($rc, 0, 'several actions: exit 0');
	is($e, '', 'several actions: nothing on stderr');
	is_deeply([requests('fake')],
		  ['get-reg 2 cr3', 'get-reg 2 rip', 'get-stats',
		   'power-button', 'force-reset', 'destroy'],
		  "bhyvectl's fixed order, --cpu applied to registers");
	is($o, "cr3[2]\t\t0x00000000000fff0\nrip[2]\t\t0x00000000000fff0\n" .
	       "vcpu0\nexits\t42\n", 'replies printed as is, in order');

	($rc, $o) = run_ctl('--vm=fake', '--get-all', '--get-rip',
			    '--get-stats', '--cpu=1');
	is($rc, 0, '--get-all: exit 0');
	is_deeply([requests('fake')], ['get-all 1', 'get-stats'],
		  '--get-all: all registers, then the stats, once');
	is($o, "all of cpu 1\nvcpu0\nexits\t42\n", '--get-all output');
	($rc, $o) = run_ctl('--vm=fake', '--get-all');
	is_deeply([requests('fake')], ['get-all 0', 'get-stats'],
		  '--get-all alone: vCPU 0 and the stats');

	my @regs = qw(efer cr0 cr2 cr3 cr4 dr0 dr1 dr2 dr3 dr6 dr7 rsp rip rax
		      rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14 r15
		      rflags cs ds es fs gs ss tr ldtr);
	($rc, $o) = run_ctl('--vm=fake', map { "--get-$_" } reverse @regs);
	is($rc, 0, 'every register getter: exit 0');
	is_deeply([requests('fake')], [map { "get-reg 0 $_" } @regs],
		  'every register getter, in bhyvectl order, cpu 0');

	fails_like(['--vm=fake', '--suspend=snap.img'],
		   qr/\Akhyvectl: vm fake: suspend: suspend is not supported yet\n\z/,
		   'error reply: the VM text as one line');
	my $cwd = getcwd();
	is_deeply([requests('fake')], ["suspend $cwd/snap.img"],
		  '--suspend sends an absolute path');

	fails_like(['--vm=fake', '--force-poweroff', '--destroy'],
		   qr/\Akhyvectl: vm fake: force-poweroff: Device or resource busy\n\z/,
		   'error reply without text: strerror');
	is_deeply([requests('fake')], ['force-poweroff'],
		  'first failure stops the run');

	($rc, $o) = run_ctl('--vm=fake', "--rundir=$rundir", '--destroy');
	is($rc, 0, 'explicit --rundir: exit 0');
	is_deeply([requests('fake')], ['destroy'], 'explicit --rundir: sent');
}

fake_vm('junk', sub { "garbage\n" });
fails_like(['--vm=junk', '--destroy'], qr/vm junk: malformed reply/,
	   'malformed status line');
fake_vm('errjunk', sub { "err 0\nx\n" });
fails_like(['--vm=errjunk', '--destroy'], qr/vm errjunk: malformed reply/,
	   'err 0 is malformed');
fake_vm('mute', sub { '' });
fails_like(['--vm=mute', '--destroy'],
	   qr/vm mute: connection closed before a reply/, 'no reply at all');
fake_vm('raw', sub { "ok\n\x00\x01binary\xff no newline" });
{
	my ($rc, $o) = run_ctl('--vm=raw', '--get-stats');
	is($rc, 0, 'binary reply: exit 0');
	is($o, "\x00\x01binary\xff no newline", 'binary reply passed as is');
}

done_testing();
