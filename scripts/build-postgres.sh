#!/usr/bin/env bash
# Build a PostgreSQL from its source tarball, once per version and flavour,
# and print the path of its pg_config (on stdout; progress goes to stderr).
#
#   bash scripts/build-postgres.sh VERSION [cassert|release]
#   PG_CONFIG=$(bash scripts/build-postgres.sh 18.6 release) bash scripts/test.sh regress isolation tap
#
# Flavours (both with --enable-tap-tests, without ICU and LLVM):
#   cassert  --enable-cassert --enable-debug, CFLAGS -O1: assertions run,
#            freed memory is clobbered, memory contexts are checked (the
#            debug server: scripts/debug-postgres.sh builds 15.18 so)
#   release  CFLAGS -O2, as a packaged server is built (the default)
#
# The source is Debian's orig tarball of the version,
# postgresql-<major>_<version>.orig.tar.bz2, in shared/postgresql beside the
# repository ($outbox_src/../shared/postgresql; OUTBOX_PG_SOURCES names
# another folder, OUTBOX_PG_TARBALL one tarball), checked against the
# SHA256SUMS file beside it. (With a deb-src entry, `apt-get source --download-only
# postgresql-<major>` fetches the same tarball with its .dsc: put it there.) It
# is installed into $OUTBOX_PG_CACHE/pg-<version>-<flavour> (default
# /var/cache/outbox as root, ~/.cache/outbox otherwise), owned by the user who
# built it and only readable by others, and reused while its stamp file
# (written last) names the same tarball and configure options. A build takes
# about 6 minutes on 2 cores; concurrent callers wait for one build (flock).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outbox_src=$(cd "$here/.." && pwd)

say() { echo "build-postgres: $*" >&2; }
die() { say "$*"; exit 1; }

version=${1:-}
flavour=${2:-release}
[[ $version =~ ^([0-9]+)\.[0-9]+$ ]] || die "usage: build-postgres.sh VERSION [cassert|release] (VERSION like 18.6)"
major=${BASH_REMATCH[1]}
case $flavour in
cassert)
    configure_opts=(--enable-cassert --enable-debug --enable-tap-tests --without-icu --without-llvm)
    cflags='-O1 -ggdb -fno-omit-frame-pointer' ;;
release)
    configure_opts=(--enable-tap-tests --without-icu --without-llvm)
    cflags='-O2' ;;
*) die "unknown flavour $flavour (cassert or release)" ;;
esac

shared=${OUTBOX_PG_SOURCES:-$outbox_src/../shared/postgresql}
tarball=${OUTBOX_PG_TARBALL:-$shared/postgresql-${major}_$version.orig.tar.bz2}
sums=$(dirname "$tarball")/SHA256SUMS
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/outbox; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/outbox; fi
cache=${OUTBOX_PG_CACHE:-$default_cache}
dest=$cache/pg-$version-$flavour
stamp=$dest/.outbox-build-complete
want="postgresql $version; sha256 %s; configure ${configure_opts[*]} CFLAGS=$cflags"

complete() {
    [ -f "$stamp" ] && [ -x "$dest/bin/pg_config" ] && [ "$(head -n 1 "$stamp")" = "$(printf "$want" "$1")" ]
}

[ -f "$tarball" ] || die "no PostgreSQL source: $tarball is missing (put postgresql-${major}_$version.orig.tar.bz2 and its SHA256SUMS in $shared, or set OUTBOX_PG_TARBALL)"
[ -f "$sums" ] || die "no checksum file $sums beside $tarball"
expected=$(awk -v f="$(basename "$tarball")" '$2 == f || $2 == "*" f {print $1}' "$sums")
[ -n "$expected" ] || die "$sums has no line for $(basename "$tarball")"

mkdir -p "$cache"
chmod 755 "$cache" 2>/dev/null || true
exec 9>"$cache/.pg-$version-$flavour.lock"
flock 9    # one build at a time; a second caller waits and then reuses it

if complete "$expected"; then
    echo "$dest/bin/pg_config"
    exit 0
fi

actual=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$actual" = "$expected" ] || die "checksum mismatch for $tarball: $actual, SHA256SUMS says $expected"

bash "$here/install-deps.sh" --build-postgres >&2 || die "could not install the build dependencies (scripts/install-deps.sh --build-postgres)"
started=$(date +%s)
build=$(mktemp -d "${TMPDIR:-/var/tmp}/outbox-pg-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
log=$build/build.log
say "building PostgreSQL $version ($flavour) into $dest (log: $log)"
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
