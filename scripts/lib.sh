# Shared by scripts/test.sh, scripts/demo.sh, bench/run.sh and examples/run.sh.
# Source it; it defines functions only.

# outbox_src: the root of the source tree.
outbox_src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outbox_pg_config=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}

# outbox_run_unprivileged SCRIPT ARGS...: initdb and postgres refuse to run as
# root. Run as root, copy the tree (tracked files and untracked, unignored
# ones) to a work folder owned by an unprivileged user (OUTBOX_TEST_USER,
# default postgres) and re-run SCRIPT from there as that user; does not
# return. Run as anyone else, return at once. Either way OUTBOX_WORK names the
# work folder afterwards. The PostgreSQL installation that PG_CONFIG names
# (an assert-enabled build, say) must be readable by that user.
outbox_run_unprivileged() {
    local script=$1; shift
    if [ "$(id -u)" != 0 ]; then
        export OUTBOX_WORK=${OUTBOX_WORK:-$outbox_src/.work}
        mkdir -p "$OUTBOX_WORK"
        return 0
    fi
    local user=${OUTBOX_TEST_USER:-postgres}
    # One work folder per tree and PostgreSQL: runs against two servers (CI
    # tests a release and an assert-enabled one) do not share it.
    local work=${OUTBOX_WORK:-/tmp/outbox-$(basename "$script" .sh)-$(printf %s "$outbox_src" | md5sum | cut -c1-8)}
    [ -n "${OUTBOX_WORK:-}" ] || [ "$outbox_pg_config" = "$(command -v pg_config)" ] ||
        work+=-$(printf %s "$outbox_pg_config" | md5sum | cut -c1-8)
    rm -rf "$work" && mkdir -p "$work/src"
    (cd "$outbox_src" && { git ls-files -z --cached --others --exclude-standard 2>/dev/null || find . -type f -print0; } |
        xargs -0 -I{} cp --parents -- {} "$work/src/" 2>/dev/null) || cp -a "$outbox_src/." "$work/src/"
    chown -R "$user" "$work"
    local rel=${script#"$outbox_src"/}
    exec runuser -u "$user" -- env OUTBOX_WORK="$work" PG_CONFIG="$outbox_pg_config" \
        OUTBOX_TAP_TESTS="${OUTBOX_TAP_TESTS:-}" bash "$work/src/$rel" "$@"
}

# outbox_private_install PREFIX: build the extension (warnings are errors) and
# install it into a private copy of the PostgreSQL installation under PREFIX
# (PostgreSQL finds its share/ and lib/ relative to its binaries, so the
# system installation is never touched). Prints the private bindir.
outbox_private_install() {
    local prefix=$1 bindir log
    bindir=$("$outbox_pg_config" --bindir)
    rm -rf "$prefix" && mkdir -p "$prefix"
    local dir
    for dir in "$bindir" "$("$outbox_pg_config" --pkglibdir)" "$("$outbox_pg_config" --sharedir)"; do
        mkdir -p "$prefix$(dirname "$dir")"
        cp -a "$dir" "$prefix$dir"
    done
    log="$prefix/build.log"
    if ! (cd "$outbox_src" && make -s clean >/dev/null 2>&1 &&
          make -s WERROR=1 PG_CONFIG="$outbox_pg_config" &&
          make -s install DESTDIR="$prefix" PG_CONFIG="$outbox_pg_config") >"$log" 2>&1; then
        cat "$log" >&2
        echo "build failed" >&2
        return 1
    fi
    echo "$prefix$bindir"
}

# outbox_free_port: a TCP port nobody listens on (for throwaway clusters).
outbox_free_port() {
    local port
    for port in $(seq 54320 54399); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    return 1
}

# outbox_scan_server_logs FILE...: look through server logs for signs of a
# crash or of memory/resource damage that a suite's own checks may not see,
# and print each offending line after its file's name. Returns 1 if any was
# found (or if no log was given), 0 otherwise. A line counts when it has
#   TRAP:                                     a failed assertion (assert-enabled builds)
#   PANIC:                                    a PANIC
#   terminated by signal N, N other than 9    a crash (the tests kill -9 on purpose)
#   terminated by exception                   a crash (Windows)
#   server process (PID n) exited with exit code N
#                                             a client backend that did not exit
#                                             with 0 or 1 (only such exits are logged)
#   (PID n) exited with exit code N, N > 1    any other process, so not a
#                                             background worker's exit code 1,
#                                             which is how the relay ends on an error
#   problem in alloc set/Generation/slab      memory context checks (assert builds)
#   ... leak: / reference leak / refcount leak / still active
#                                             resources not released (WARNINGs)
outbox_scan_server_logs() {
    local f found=0 scanned=0 hits
    for f in "$@"; do
        [ -f "$f" ] || continue
        scanned=$((scanned + 1))
        hits=$(awk '
            /TRAP: / || /(^|[^A-Za-z_])PANIC: / || /terminated by exception/ { print; next }
            match($0, /terminated by signal [0-9]+/) {
                if (substr($0, RSTART + 21, RLENGTH - 21) + 0 != 9) print
                next
            }
            /server process \(PID [0-9]+\) exited with exit code/ { print; next }
            match($0, /\(PID [0-9]+\) exited with exit code [0-9]+/) {
                s = substr($0, RSTART, RLENGTH); sub(/.* /, "", s)
                if (s + 0 > 1) print
                next
            }
            /problem in (alloc set|Generation|slab) / { print; next }
            /WARNING: .*( leak: | reference leak|refcount leak|snapshot .* still active|leaked hash_seq_search)/ { print; next }
        ' "$f")
        if [ -n "$hits" ]; then
            found=1
            echo "---- $f: signs of a crash"
            printf '%s\n' "$hits" | head -n 40
        fi
    done
    if [ $scanned -eq 0 ]; then
        echo "---- no server log to scan (looked for: $*)"
        return 1
    fi
    return $found
}
