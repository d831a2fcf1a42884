#!/usr/bin/env bash
# Build an assert-enabled PostgreSQL 15 from source, once, and print the path
# of its pg_config (on stdout; progress goes to stderr).
#
#   bash scripts/debug-postgres.sh
#   PG_CONFIG=$(bash scripts/debug-postgres.sh) bash scripts/test.sh regress isolation tap
#   bash scripts/test.sh --debug-server regress isolation tap     (the same)
#
# Configured with --enable-cassert --enable-debug --enable-tap-tests: assertions
# run, freed memory is clobbered, memory contexts are checked. The source is
# the orig tarball in shared/postgresql beside the repository
# ($outbox_src/../shared/postgresql; OUTBOX_PG_TARBALL names another one),
# checked against the SHA256SUMS file there. It is installed into
# $OUTBOX_PG_CACHE/pg-<version>-cassert (default /var/cache/outbox as root,
# ~/.cache/outbox otherwise), owned by the user who built it and only
# readable by others, and reused while its stamp file (written last) names
# the same tarball and configure options. About 6 minutes on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outbox_src=$(cd "$here/.." && pwd)
version=15.18
shared=$outbox_src/../shared/postgresql
tarball=${OUTBOX_PG_TARBALL:-$shared/postgresql-15_$version.orig.tar.bz2}
sums=$(dirname "$tarball")/SHA256SUMS
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/outbox; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/outbox; fi
cache=${OUTBOX_PG_CACHE:-$default_cache}
dest=$cache/pg-$version-cassert
stamp=$dest/.outbox-build-complete
configure_opts=(--enable-cassert --enable-debug --enable-tap-tests --without-icu --without-llvm)
cflags='-O1 -ggdb -fno-omit-frame-pointer'
want="postgresql $version; sha256 %s; configure ${configure_opts[*]} CFLAGS=$cflags"

say() { echo "debug-postgres: $*" >&2; }
die() { say "$*"; exit 1; }

complete() {
    [ -f "$stamp" ] && [ -x "$dest/bin/pg_config" ] && [ "$(head -n 1 "$stamp")" = "$(printf "$want" "$1")" ]
}

[ -f "$tarball" ] || die "no PostgreSQL source: $tarball is missing (put postgresql-15_$version.orig.tar.bz2 and its SHA256SUMS in $shared, or set OUTBOX_PG_TARBALL)"
[ -f "$sums" ] || die "no checksum file $sums beside $tarball"
expected=$(awk -v f="$(basename "$tarball")" '$2 == f || $2 == "*" f {print $1}' "$sums")
[ -n "$expected" ] || die "$sums has no line for $(basename "$tarball")"

mkdir -p "$cache"
chmod 755 "$cache" 2>/dev/null || true
exec 9>"$cache/.pg-$version-cassert.lock"
flock 9    # one build at a time; a second caller waits and then reuses it

if complete "$expected"; then
    echo "$dest/bin/pg_config"
    exit 0
fi

actual=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$actual" = "$expected" ] || die "checksum mismatch for $tarball: $actual, SHA256SUMS says $expected"

bash "$here/install-deps.sh" --debug-postgres >&2 || die "could not install the build dependencies (scripts/install-deps.sh --debug-postgres)"
started=$(date +%s)
build=$(mktemp -d "${TMPDIR:-/var/tmp}/outbox-pg-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
log=$build/build.log
say "building PostgreSQL $version with assertions into $dest (log: $log)"
rm -rf "$dest"
run() { "$@" >>"$log" 2>&1 || { tail -n 60 "$log" >&2; die "failed: $*"; }; }
run tar -xjf "$tarball" -C "$build"
cd "$build/postgresql-$version"
run ./configure --prefix="$dest" "${configure_opts[@]}" CFLAGS="$cflags"
run make -j2 -s
run make -s install
# Everything readable and nothing writable by anyone but the builder (the
# tests run as another user and must not be able to break the cache).
chmod -R go-w,a+rX "$dest"
printf "$want\n" "$expected" >"$stamp"
printf 'built %s in %d s\n' "$(date -u +%FT%TZ)" $(( $(date +%s) - started )) >>"$stamp"
say "built in $(( $(date +%s) - started )) s"
echo "$dest/bin/pg_config"
