#!/usr/bin/env bash
# Real clients against a real server, through PgBouncer in transaction pooling.
#
#   examples/run.sh [--quick] [--keep] [client ...]
#       clients: node-postgres drizzle prisma psycopg knex kysely typeorm
#                sqlalchemy tenants prisma-next (default: all)
#
# Sets up a throwaway cluster (as the postgres user) with the extension
# installed into a private copy of the PostgreSQL installation, puts PgBouncer
# (pool_mode = transaction) in front of it, installs each client from its
# registry (npm ci from the committed package-lock.json; Debian's
# python3-psycopg, python3-sqlalchemy and python3-psycopg2), runs each
# client's test and prints one line per check: "ok - client: description",
# "not ok - client: description", or "skip - client: description (why)".
# The tenants client gets two more databases (tenant_us, tenant_eu), served
# by the relay with examples through one outbox.databases setting.
#
# Run as root it copies the tree to a work folder owned by postgres, builds
# the extension there and re-runs itself as postgres. scripts/test.sh passes
# PGBIN (binaries of its private copy, the extension already installed) and
# OUTBOX_WORK (its work folder). --quick uses small counts; every client's
# test still runs. --keep leaves the cluster and PgBouncer running.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
quick=0
keep=0
clients=()
for arg in "$@"; do
    case $arg in
    --quick) quick=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;;
    node-postgres|drizzle|prisma|psycopg|knex|kysely|typeorm|sqlalchemy|tenants|prisma-next) clients+=("$arg") ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
[ ${#clients[@]} -gt 0 ] || clients=(node-postgres drizzle prisma psycopg knex kysely typeorm sqlalchemy tenants prisma-next)

if [ "$(id -u)" = 0 ]; then
    # What the clients need from Debian (CI installs them too: .ci/run).
    missing=()
    for p in pgbouncer python3-psycopg python3-sqlalchemy python3-psycopg2; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "# installing ${missing[*]} (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
            echo "# could not install ${missing[*]}"
    fi
    runas=${OUTBOX_TEST_USER:-postgres}
    work=${OUTBOX_WORK:-/tmp/outbox-examples-$(printf %s "$src" | md5sum | cut -c1-8)}
    # Copy the tree (tracked and untracked, unignored files: never node_modules).
    [ -f "$work/examples/pgbouncer.pid" ] && kill "$(cat "$work/examples/pgbouncer.pid")" 2>/dev/null
    [ -d "$work/examples/data" ] && runuser -u "$runas" -- "$work/pg/usr/lib/postgresql/15/bin/pg_ctl" \
        -D "$work/examples/data" -m immediate stop >/dev/null 2>&1
    # With PGBIN given, the work folder holds that installation: keep it.
    if [ -n "${PGBIN:-}" ]; then copy="$work/examples-src"; rm -rf "$copy"; else copy="$work/src"; rm -rf "$work"; fi
    mkdir -p "$copy"
    (cd "$src" && git ls-files -z --cached --others --exclude-standard 2>/dev/null |
        xargs -0 -I{} cp --parents -- {} "$copy/" 2>/dev/null) || cp -a "$src/." "$copy/"
    rm -rf "$copy"/examples/*/node_modules
    chown -R "$runas" "$work"
    exec runuser -u "$runas" -- env OUTBOX_WORK="$work" PGBIN="${PGBIN:-}" bash "$copy/examples/run.sh" "$@"
fi

work=${OUTBOX_WORK:-$src/.examples-work}
ex="$work/examples"
mkdir -p "$ex"
failures=0
say() { echo "$*"; case "$*" in "not ok"*) failures=$((failures + 1)) ;; esac; }
started=$(date +%s)

# ---------------------------------------------------------------- PostgreSQL
if [ -z "${PGBIN:-}" ]; then
    pg_config=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
    prefix="$work/pg"
    bindir=$("$pg_config" --bindir)
    rm -rf "$prefix" && mkdir -p "$prefix"
    (cd / && cp -a --parents "$bindir" "$("$pg_config" --pkglibdir)" "$("$pg_config" --sharedir)" "$prefix/")
    echo "# building the extension into $prefix"
    if ! (cd "$src" && make -s clean >/dev/null 2>&1 && make -s -j2 PG_CONFIG="$pg_config" >"$ex/build.log" 2>&1 &&
          make -s install DESTDIR="$prefix" PG_CONFIG="$pg_config" >>"$ex/build.log" 2>&1); then
        cat "$ex/build.log"
        say "not ok - build and install the extension"
        echo "0 passed, 1 failed"
        exit 1
    fi
    PGBIN="$prefix$bindir"
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pgport=${OUTBOX_EXAMPLES_PGPORT:-$(free_port)}
pgbport=${OUTBOX_EXAMPLES_PGBPORT:-$(free_port)}
data="$ex/data"
sock="$ex/sock"
rm -rf "$data" "$sock" && mkdir -p "$sock"

cleanup() {
    if [ $keep = 1 ]; then
        echo "# kept: PostgreSQL on port $pgport (socket $sock), PgBouncer on port $pgbport"
        return
    fi
    [ -f "$ex/pgbouncer.pid" ] && kill "$(cat "$ex/pgbouncer.pid")" 2>/dev/null
    "$PGBIN/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1
}
trap cleanup EXIT

"$PGBIN/initdb" -D "$data" -U postgres -A trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$ex/initdb.log" 2>&1 ||
    { cat "$ex/initdb.log"; say "not ok - initdb"; echo "0 passed, 1 failed"; exit 1; }
cat >>"$data/postgresql.conf" <<EOF
port = $pgport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
shared_preload_libraries = 'outbox'
max_connections = 60
fsync = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
cat >"$data/pg_hba.conf" <<EOF
local all postgres trust
host  examples app,app_strict 127.0.0.1/32 scram-sha-256
host  tenant_us,tenant_eu tenant_app 127.0.0.1/32 scram-sha-256
EOF
if ! "$PGBIN/pg_ctl" -D "$data" -l "$ex/postgresql.log" -w start >/dev/null; then
    tail -n 40 "$ex/postgresql.log"
    say "not ok - start PostgreSQL"
    echo "0 passed, 1 failed"
    exit 1
fi
psql_su() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$pgport" -U postgres "$@"; }

psql_su -d postgres -c 'CREATE DATABASE examples' &&
    psql_su -d examples -f "$here/setup.sql" >"$ex/setup.log" 2>&1
if [ $? -ne 0 ]; then
    cat "$ex/setup.log"
    say "not ok - create the extension, roles and tables (examples/setup.sql)"
    echo "0 passed, 1 failed"
    exit 1
fi
say "ok - setup: CREATE EXTENSION outbox, roles app and app_strict, business tables"

# The tenant-per-database example: two more databases, one per tenant (region).
served=examples
if [[ " ${clients[*]} " == *" tenants "* ]]; then
    for db in tenant_us tenant_eu; do
        if ! { psql_su -d postgres -c "CREATE DATABASE $db" &&
               psql_su -d $db -f "$here/tenants/setup.sql"; } >"$ex/setup-$db.log" 2>&1; then
            cat "$ex/setup-$db.log"
            say "not ok - tenants: create database $db (examples/tenants/setup.sql)"
            echo "1 passed, 1 failed"
            exit 1
        fi
    done
    served=examples,tenant_us,tenant_eu
    say "ok - setup: tenant databases tenant_us and tenant_eu (examples/tenants/setup.sql), role tenant_app"
fi

# The relay (background worker), when this build has one: serve these databases.
has_relay=$(psql_su -d examples -Atc "SELECT count(*) FROM pg_settings WHERE name = 'outbox.databases'")
if [ "$has_relay" = 1 ]; then
    psql_su -d examples -c "ALTER SYSTEM SET outbox.databases = '$served'" -c 'SELECT pg_reload_conf()' >/dev/null
    echo "# the relay serves databases $served (outbox.databases)"
else
    echo "# this build has no relay (no outbox.databases setting): worker delivery checks are skipped"
fi

# ---------------------------------------------------------------- PgBouncer
pgbouncer=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
if [ ! -x "$pgbouncer" ]; then
    say "not ok - PgBouncer installed (Debian package pgbouncer: apt-get install pgbouncer)"
    echo "1 passed, 1 failed"
    exit 1
fi
cat >"$ex/userlist.txt" <<'EOF'
"app" "app-secret"
"app_strict" "app-secret"
"pgb_admin" "admin-secret"
"tenant_app" "app-secret"
EOF
cat >"$ex/pgbouncer.ini" <<EOF
[databases]
examples = host=127.0.0.1 port=$pgport dbname=examples
tenant_us = host=127.0.0.1 port=$pgport dbname=tenant_us
tenant_eu = host=127.0.0.1 port=$pgport dbname=tenant_eu

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgbport
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $ex/userlist.txt
admin_users = pgb_admin
pool_mode = transaction
; Few server connections for many client connections: every client's
; transactions are spread over whatever server connection is free.
default_pool_size = 4
max_client_conn = 200
logfile = $ex/pgbouncer.log
pidfile = $ex/pgbouncer.pid
EOF
rm -f "$ex/pgbouncer.pid" "$ex/pgbouncer.log"
if ! "$pgbouncer" -d "$ex/pgbouncer.ini" >"$ex/pgbouncer.out" 2>&1; then
    cat "$ex/pgbouncer.out"
    say "not ok - start PgBouncer"
    echo "1 passed, 1 failed"
    exit 1
fi
for _ in $(seq 50); do
    PGPASSWORD=app-secret "$PGBIN/psql" -X -h 127.0.0.1 -p "$pgbport" -U app -d examples -Atc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
done
pgb_version=$("$pgbouncer" --version | head -n 1)
pool_mode=$(PGPASSWORD=admin-secret "$PGBIN/psql" -X -h 127.0.0.1 -p "$pgbport" -U pgb_admin -d pgbouncer -Atc 'SHOW CONFIG' 2>&1 |
    awk -F'|' '$1 == "pool_mode" {print $2}')
if [ "$pool_mode" = transaction ]; then
    say "ok - pgbouncer: $pgb_version running with pool_mode = transaction"
else
    say "not ok - pgbouncer: pool_mode is '$pool_mode', not transaction"
fi

# Every client connects through PgBouncer; nothing below uses the server port.
export DATABASE_URL="postgresql://app:app-secret@127.0.0.1:$pgbport/examples"
export DATABASE_URL_STRICT="postgresql://app_strict:app-secret@127.0.0.1:$pgbport/examples"
export TENANT_US_URL="postgresql://tenant_app:app-secret@127.0.0.1:$pgbport/tenant_us"
export TENANT_EU_URL="postgresql://tenant_app:app-secret@127.0.0.1:$pgbport/tenant_eu"
export OUTBOX_EXAMPLES_QUICK=$quick
export OUTBOX_EXAMPLES_DIR="$here"
export PGBOUNCER_VERSION="$pgb_version"
# Clients must not fetch anything but registry packages.
export CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1 npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
export NO_COLOR=1 FORCE_COLOR=0 NODE_NO_WARNINGS=1

# Runs one client's test command (a shell command, in the client's folder); turns its TAP lines into "ok - client: ..."
# lines; a test program that dies without reporting a failure is one.
run_client_test() {
    local client=$1; shift
    local out="$ex/$client.test.out" rc
    (cd "$here/$client" && timeout 240 bash -c "$1") >"$out" 2>&1
    rc=$?
    sed -nE \
        -e "/^(not )?ok [0-9]+ - .* # SKIP/{s/^(not )?ok [0-9]+ - (.*) # SKIP ?(.*)$/skip - $client: \2 (\3)/p;d}" \
        -e "s/^(not )?ok [0-9]+ - (.*)$/\1ok - $client: \2/p;t" \
        -e "s/^(not )?ok - (.*)$/\1ok - $client: \2/p;t" \
        -e "s/^skip - (.*)$/skip - $client: \1/p" \
        "$out" > "$out.lines"
    while IFS= read -r line; do say "$line"; done < "$out.lines"
    if grep -q '^not ok' "$out.lines" || [ $rc -ne 0 ]; then
        echo "# ---- $client test output ($out)"
        sed 's/^/# /' "$out" | tail -n 120
        grep -q '^not ok' "$out.lines" || say "not ok - $client: test program exited with status $rc"
    fi
}

npm_install() {
    local client=$1
    local log="$ex/$client.npm.log"
    # From the lock file; no install scripts (nothing is downloaded outside
    # the registry: Prisma's engines postinstall would try to).
    if (cd "$here/$client" && timeout 900 npm ci --ignore-scripts --prefer-offline --no-audit --no-fund >"$log" 2>&1); then
        say "ok - $client: npm ci (packages from the npm registry, lock file committed)"
        return 0
    fi
    tail -n 30 "$log" | sed 's/^/# /'
    say "not ok - $client: npm ci"
    return 1
}

typecheck() {
    local client=$1
    if (cd "$here/$client" && timeout 120 npx --no-install tsc --noEmit >"$ex/$client.tsc.log" 2>&1); then
        say "ok - $client: the example and its schema type-check (tsc --noEmit)"
    else
        sed 's/^/# /' "$ex/$client.tsc.log"
        say "not ok - $client: the example and its schema type-check (tsc --noEmit)"
    fi
    return 0
}

for client in "${clients[@]}"; do
    echo "# == $client"
    case $client in
    node-postgres)
        npm_install node-postgres && run_client_test node-postgres "node --test --test-reporter=tap --test-concurrency=1 test/*.test.js"
        ;;
    drizzle)
        npm_install drizzle && typecheck drizzle && run_client_test drizzle "node --import tsx --test --test-reporter=tap --test-concurrency=1 test/*.test.ts"
        ;;
    prisma)
        if npm_install prisma; then
            # prisma generate, offline: the client engine (query compiler,
            # WebAssembly in the npm package) needs no binary; the CLI still
            # checks for the schema engine binary (used only by migrate and
            # db pull), which is not on npm: point it at a stub that refuses.
            # Proxies that do not exist make any download attempt fail loudly.
            stub="$ex/no-schema-engine"
            printf '#!/bin/sh\necho "schema engine binary not available here (not on npm)" >&2\nexit 1\n' >"$stub"
            chmod +x "$stub"
            export PRISMA_SCHEMA_ENGINE_BINARY="$stub" HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
                https_proxy=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 PRISMA_ENGINES_MIRROR=http://127.0.0.1:9
            if (cd "$here/prisma" && timeout 120 npx --no-install prisma generate >"$ex/prisma.generate.log" 2>&1); then
                say "ok - prisma: prisma generate with no download (engine binaries unreachable)"
                typecheck prisma
                run_client_test prisma "node --import tsx --test --test-reporter=tap --test-concurrency=1 test/*.test.ts"
            else
                sed 's/^/# /' "$ex/prisma.generate.log"
                say "not ok - prisma: prisma generate with no download"
            fi
            unset PRISMA_SCHEMA_ENGINE_BINARY HTTPS_PROXY HTTP_PROXY https_proxy http_proxy PRISMA_ENGINES_MIRROR
        fi
        ;;
    knex)
        npm_install knex && run_client_test knex "node --test --test-reporter=tap --test-concurrency=1 test/*.test.js"
        ;;
    kysely)
        npm_install kysely && typecheck kysely && run_client_test kysely "node --import tsx --test --test-reporter=tap --test-concurrency=1 test/*.test.ts"
        ;;
    prisma-next)
        if npm_install prisma-next; then
            # The emitted contract (generated/) is committed: emit it again,
            # offline and without the CLI's telemetry, and compare.
            emitted="$ex/prisma-next-emit"
            rm -rf "$emitted"
            if (cd "$here/prisma-next" && DO_NOT_TRACK=1 HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 \
                    PRISMA_NEXT_EMIT_DIR="$emitted" timeout 120 node --import tsx node_modules/@prisma-next/cli/dist/cli.mjs \
                    contract emit >"$ex/prisma-next.emit.log" 2>&1) &&
               diff -r "$here/prisma-next/generated" "$emitted" >>"$ex/prisma-next.emit.log" 2>&1; then
                say "ok - prisma-next: prisma-next contract emit (offline) reproduces the committed generated/ contract"
            else
                sed 's/^/# /' "$ex/prisma-next.emit.log" | tail -n 40
                say "not ok - prisma-next: prisma-next contract emit reproduces the committed generated/ contract"
            fi
            typecheck prisma-next
            run_client_test prisma-next "node --import tsx --test --test-reporter=tap --test-concurrency=1 test/*.test.ts"
        fi
        ;;
    tenants)
        npm_install tenants && run_client_test tenants "node --test --test-reporter=tap --test-concurrency=1 test/*.test.js"
        ;;
    typeorm)
        npm_install typeorm && typecheck typeorm && run_client_test typeorm "node --import tsx --test --test-reporter=tap --test-concurrency=1 test/*.test.ts"
        ;;
    psycopg)
        if /usr/bin/python3 -c 'import psycopg' 2>/dev/null; then
            ver=$(/usr/bin/python3 -c 'import psycopg; print(psycopg.__version__)')
            say "ok - psycopg: psycopg $ver from Debian (python3-psycopg)"
            run_client_test psycopg "/usr/bin/python3 test_outbox.py"
        else
            say "not ok - psycopg: python3-psycopg installed (apt-get install python3-psycopg)"
        fi
        ;;
    sqlalchemy)
        if /usr/bin/python3 -c 'import sqlalchemy, psycopg2' 2>/dev/null; then
            ver=$(/usr/bin/python3 -c 'import sqlalchemy, psycopg2; print(sqlalchemy.__version__, "on psycopg2", psycopg2.__version__.split()[0])')
            say "ok - sqlalchemy: SQLAlchemy $ver from Debian (python3-sqlalchemy, python3-psycopg2)"
            run_client_test sqlalchemy "/usr/bin/python3 test_outbox.py"
        else
            say "not ok - sqlalchemy: python3-sqlalchemy and python3-psycopg2 installed (apt-get install python3-sqlalchemy python3-psycopg2)"
        fi
        ;;
    esac
done

# ---------------------------------------------------------------- PgBouncer saw it all
stats=$(PGPASSWORD=admin-secret "$PGBIN/psql" -X -h 127.0.0.1 -p "$pgbport" -U pgb_admin -d pgbouncer -Atc 'SHOW STATS' 2>/dev/null |
    awk -F'|' '$1 == "examples" {print $2}')
if [ -n "$stats" ] && [ "$stats" -gt 0 ]; then
    say "ok - pgbouncer: served $stats transactions of the clients in transaction pooling"
else
    say "not ok - pgbouncer: served the clients' transactions (SHOW STATS: '${stats}')"
fi
# Errors the tests provoke on purpose are in the server log; crashes must not be.
if grep -qE 'PANIC|server process .* (terminated|was terminated) by signal' "$ex/postgresql.log" 2>/dev/null; then
    grep -E 'PANIC|terminated by signal' "$ex/postgresql.log" | head -n 20 | sed 's/^/# /'
    say "not ok - server: no backend crashed during the examples"
else
    say "ok - server: no backend crashed during the examples"
fi

echo "# examples took $(( $(date +%s) - started )) s; logs in $ex"
[ $failures -eq 0 ]
