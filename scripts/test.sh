#!/usr/bin/env bash
# Build outbox and run its test suites against a real PostgreSQL.
#
#   scripts/test.sh [--debug-server | --installed] [regress] [isolation] [tap] [bench] [examples] [http] [kafka] [webhooks] [monitoring]
#       (default: regress isolation tap; http is the HTTP sink's engine test,
#       test/http/run.sh, kafka the Kafka sink kind's test against a mock
#       cluster, test/kafka/run.sh, and webhooks the test receiver's self-test and the
#       signature examples, examples/webhooks: none of them needs PostgreSQL;
#       monitoring is test/monitoring/run.sh: the Prometheus exporter's
#       queries and the alert rules against a cluster, which needs Debian's
#       prometheus-postgres-exporter, prometheus and curl installed)
#   OUTBOX_TAP_TESTS="test/t/020_relay_wakeup.pl ..." runs only those TAP tests.
#
# PG_CONFIG names the PostgreSQL to test against (default: the pg_config on
# PATH, Debian's postgresql-server-dev-15). --debug-server builds (once, see
# scripts/debug-postgres.sh) and uses an assert-enabled PostgreSQL 15 instead.
# --installed builds nothing and tests the extension as it is installed in
# that PostgreSQL (by the Debian package: scripts/package.sh).
#
# The extension is installed into a private copy of the PostgreSQL
# installation (PostgreSQL finds its share/ and lib/ relative to its binaries),
# so several checkouts can be tested at once and the system install is never
# touched. initdb refuses to run as root: run as root, the script copies the
# tree to a work folder owned by the `postgres` user and runs everything there
# as that user. It prints regression.diffs and server logs of failing suites.
# After each suite every server log it left is scanned for crashes, failed
# assertions and memory or resource damage (outbox_scan_server_logs in
# scripts/lib.sh); a suite whose logs show any counts one more failure. It
# ends with the line "N passed, N failed".
set -uo pipefail

if [ "${1:-}" = --debug-server ]; then
    shift
    PG_CONFIG=$(bash "$(dirname "${BASH_SOURCE[0]}")/debug-postgres.sh") || { echo "0 passed, 1 failed"; exit 1; }
    export PG_CONFIG
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
installed=
[ "${1:-}" = --installed ] && { installed=--installed; shift; }
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(regress isolation tap)

outbox_run_unprivileged "$outbox_src/scripts/test.sh" $installed "${suites[@]}"
work=$OUTBOX_WORK
pg_config=$outbox_pg_config
cd "$outbox_src"

if [ -n "$installed" ]; then
    pbin=$("$pg_config" --bindir)
    echo "== the extension as installed in $("$pg_config" --version) ($pg_config): nothing is built"
    for f in "$("$pg_config" --pkglibdir)/outbox.so" "$("$pg_config" --sharedir)/extension/outbox.control"; do
        [ -f "$f" ] || { echo "not installed: $f is missing"; echo "0 passed, 1 failed"; exit 1; }
    done
else
    echo "== build (warnings are errors) and install into a private copy of $("$pg_config" --version) ($pg_config)"
    if ! pbin=$(outbox_private_install "$work/pg"); then
        echo "0 passed, 1 failed"
        exit 1
    fi
fi

passed=0
failed=0
status=0

# Count pg_regress / isolation results: "test x ... ok", "x ... FAILED" up to
# PostgreSQL 15, TAP lines ("ok 3 - x", "not ok 4 + y") from 16 on.
count_regress() {
    local out=$1 ok bad
    ok=$(grep -cE '\.\.\. ok|^ok [0-9]+ +[-+] ' "$out")
    bad=$(grep -cE '\.\.\. (FAILED|failed)|^not ok [0-9]+ +[-+] ' "$out")
    passed=$((passed + ok)); failed=$((failed + bad))
}

show_failure() {
    local dir
    for dir in "$@"; do
        [ -f "$dir/regression.diffs" ] && { echo "---- $dir/regression.diffs"; cat "$dir/regression.diffs"; }
        for log in "$dir"/log/*.log "$dir"/tmp_check/log/*; do
            [ -f "$log" ] && { echo "---- $log (last 80 lines)"; tail -n 80 "$log"; }
        done
    done
}

# scan_logs SUITE FILE...: the crash scan of a suite's server logs, counted
# as one test.
scan_logs() {
    local suite=$1; shift
    local logs=() f
    for f in "$@"; do [ -f "$f" ] && logs+=("$f"); done
    if outbox_scan_server_logs "$@"; then
        echo "ok - $suite: no crash, failed assertion or memory damage in its ${#logs[@]} log(s)"
        passed=$((passed + 1))
    else
        echo "not ok - $suite: server logs show a crash, a failed assertion or memory damage (above)"
        failed=$((failed + 1)); status=1
    fi
}

for suite in "${suites[@]}"; do
    out="$work/$suite.out"
    case $suite in
    regress|isolation)
        echo "== $suite"
        # Both suites write to test/ (results/, log/, regression.diffs), one after the other.
        logdir=test/log
        rm -rf "$logdir" test/regression.diffs test/regression.out
        make -s "check-$suite" PG_CONFIG="$pg_config" bindir="$pbin" >"$out" 2>&1
        rc=$?
        cat "$out"
        before=$failed
        count_regress "$out"
        if [ $rc -ne 0 ] || [ $failed -ne $before ]; then
            [ $failed -eq $before ] && failed=$((failed + 1))
            status=1
            show_failure test
        fi
        scan_logs "$suite" "$logdir"/*.log
        ;;
    tap)
        echo "== tap"
        # OUTBOX_TAP_TESTS="test/t/023_relay_poison.pl ...": only those.
        make -s check-tap PG_CONFIG="$pg_config" bindir="$pbin" \
            ${OUTBOX_TAP_TESTS:+PROVE_TESTS="$OUTBOX_TAP_TESTS"} >"$out" 2>&1
        rc=$?
        cat "$out"
        total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$out" | tail -n 1)
        bad=$(grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$out" | awk '{split($2,a,"/"); s+=a[1]} END {print s+0}')
        dubious=$(grep -cE 'Dubious|Bad plan|No subtests run' "$out")
        total=${total:-0}
        passed=$((passed + total - bad)); failed=$((failed + bad + dubious))
        if [ $rc -ne 0 ]; then
            [ $((bad + dubious)) -eq 0 ] && failed=$((failed + 1))
            status=1
            for log in tmp_check/log/*; do
                [ -f "$log" ] && { echo "---- $log (last 60 lines)"; tail -n 60 "$log"; }
            done
        fi
        # Server logs (<test>_<node>.log) and the tests' own (regress_log_*,
        # which hold the output of pg_dump, pg_ctl and the like).
        scan_logs tap tmp_check/log/*
        ;;
    bench|examples)
        echo "== $suite"
        if [ -x "$suite/run.sh" ]; then
            # Where their clusters log (bench/run.sh clears its folder itself).
            serverlog="$work/bench/server.log"
            [ $suite = examples ] && { serverlog="$work/examples/postgresql.log"; rm -f "$serverlog"; }
            PGBIN="$pbin" OUTBOX_WORK="$work" bash "$suite/run.sh" --quick >"$out" 2>&1
            rc=$?
            cat "$out"
            ok=$(grep -cE '^ok( |$)' "$out"); bad=$(grep -cE '^not ok( |$)' "$out")
            passed=$((passed + ok)); failed=$((failed + bad))
            if [ $rc -ne 0 ]; then status=1; [ $bad -eq 0 ] && failed=$((failed + 1)); fi
            scan_logs "$suite" "$serverlog"
        else
            echo "$suite/run.sh not present: skipped"
        fi
        ;;
    http|kafka)
        # A sink's engine alone, against a local server (http) or a mock
        # cluster (kafka): no PostgreSQL, so no server logs to scan.
        echo "== $suite"
        bash "test/$suite/run.sh" >"$out" 2>&1
        rc=$?
        cat "$out"
        ok=$(grep -cE '^ok [0-9]+' "$out"); bad=$(grep -cE '^not ok( |$)' "$out")
        passed=$((passed + ok)); failed=$((failed + bad))
        if [ $rc -ne 0 ]; then status=1; [ $bad -eq 0 ] && failed=$((failed + 1)); fi
        ;;
    webhooks)
        # The webhook receiver the tests use (its self-test) and the
        # signature-verification examples (Node and Python): no PostgreSQL.
        echo "== webhooks"
        { timeout 60 node test/webhook/selftest.mjs; echo "# selftest exit $?"
          timeout 120 bash examples/webhooks/run.sh; echo "# examples exit $?"; } >"$out" 2>&1
        cat "$out"
        ok=$(grep -cE '^ok( |$)' "$out"); bad=$(grep -cE '^not ok( |$)' "$out")
        passed=$((passed + ok)); failed=$((failed + bad))
        if grep -qE '^# (selftest|examples) exit [1-9]' "$out"; then
            status=1; [ $bad -eq 0 ] && failed=$((failed + 1))
        fi
        ;;
    monitoring)
        # monitoring/: the exporter's queries scraped and the alert rules
        # evaluated against a cluster of its own (test/monitoring/run.sh).
        echo "== monitoring"
        PGBIN="$pbin" OUTBOX_WORK="$work" timeout 600 bash test/monitoring/run.sh >"$out" 2>&1
        rc=$?
        # Its own closing line is not this script's.
        sed -E 's/^([0-9]+ passed, [0-9]+ failed)$/# monitoring: \1/' "$out"
        ok=$(grep -cE '^ok( |$)' "$out"); bad=$(grep -cE '^not ok( |$)' "$out")
        passed=$((passed + ok)); failed=$((failed + bad))
        if [ $rc -ne 0 ]; then status=1; [ $bad -eq 0 ] && failed=$((failed + 1)); fi
        scan_logs monitoring "$work/monitoring/postgresql.log"
        ;;
    *)
        echo "unknown suite: $suite"; failed=$((failed + 1)); status=1 ;;
    esac
done

echo "$passed passed, $failed failed"
exit $status
