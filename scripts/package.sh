#!/usr/bin/env bash
# Build the Debian package (debian/: pg_buildext, postgresql-15-outbox), check
# it with lintian, install it on the machine's PostgreSQL 15 and run suites
# against the installed files (installcheck: nothing is built for them).
#
#   bash scripts/package.sh [SUITE ...]      (default: regress isolation tap)
#   OUTBOX_PACKAGE_TAP_TESTS="test/t/..."     the TAP tests run (default below)
#
# Needs root (or sudo) to install the package. Steps, each counted as a test:
#   1. dpkg-buildpackage -us -uc -b in a copy of the tree (tracked and
#      untracked, unignored files), under $OUTBOX_WORK (default
#      /tmp/outbox-package-<hash of the tree's path>); the .deb lands there
#   2. lintian on the .changes: no error (warnings and the like are printed)
#   3. apt-get install ./postgresql-15-outbox_*.deb (its Depends come from
#      shlibs: libcurl, libfmt, libssl...), and it holds the library, the
#      control file and every SQL script of sql/
#   4. scripts/test.sh --installed SUITE...: the suites run against throwaway
#      clusters of the system's PostgreSQL 15 binaries, which load the
#      installed outbox.so and SQL scripts. The TAP tests run by default are
#      004 (0.1.0 installed from the package's frozen script and updated with
#      its upgrade scripts) and 020 (the relay, woken on commit).
# Ends with "N passed, N failed" (the suites' counts included).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(regress isolation tap)
tap_tests=${OUTBOX_PACKAGE_TAP_TESTS:-test/t/004_upgrade.pl test/t/020_relay_wakeup.pl}

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [ $failed -eq 0 ]; exit $?; }

sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "package.sh installs a package: run it as root, or with sudo available"; not_ok "root"; finish; }
    sudo=sudo
fi

bash "$here/install-deps.sh" --package || { not_ok "install the packaging tools (scripts/install-deps.sh --package)"; finish; }

version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$src/outbox.control")
debversion=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
[ "${debversion%-*}" = "$version" ] && ok "debian/changelog's version $debversion is outbox.control's $version" ||
    not_ok "debian/changelog's version $debversion is not outbox.control's $version"

work=${OUTBOX_WORK:-/tmp/outbox-package-$(printf %s "$src" | md5sum | cut -c1-8)}
rm -rf "$work" && mkdir -p "$work/outbox-$version"
(cd "$src" && { git ls-files -z --cached --others --exclude-standard 2>/dev/null || find . -type f -print0; } |
    xargs -0 -I{} cp --parents -- {} "$work/outbox-$version/") || { not_ok "copy the tree"; finish; }

echo "== dpkg-buildpackage -us -uc -b (log: $work/build.log)"
t0=$(date +%s)
if (cd "$work/outbox-$version" && nice dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    ok "dpkg-buildpackage -us -uc -b ($(( $(date +%s) - t0 )) s)"
else
    tail -n 60 "$work/build.log"
    not_ok "dpkg-buildpackage -us -uc -b"; finish
fi
changes=$(ls "$work"/outbox_*.changes)
deb=$(ls "$work"/postgresql-15-outbox_*.deb)
echo "== $(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"

echo "== lintian $(basename "$changes")"
# Every tag but the experimental and overridden ones; an error fails.
if lintian --display-info --fail-on error "$changes" >"$work/lintian.log" 2>&1; then
    cat "$work/lintian.log"
    ok "lintian: no error ($(grep -c '^[WIPX]: ' "$work/lintian.log") other tags, above)"
else
    cat "$work/lintian.log"
    not_ok "lintian reports errors (E: above)"
fi

echo "== apt-get install $(basename "$deb")"
if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends --reinstall "$deb" >"$work/install.log" 2>&1; then
    ok "the package installs (with its dependencies)"
else
    cat "$work/install.log"; not_ok "the package installs"; finish
fi
pg_config=/usr/lib/postgresql/15/bin/pg_config
missing=()
shipped=$(dpkg -L postgresql-15-outbox)
for f in "$("$pg_config" --pkglibdir)/outbox.so" "$("$pg_config" --sharedir)/extension/outbox.control" \
         $(cd "$src/sql" && ls outbox--*.sql | grep -v "^outbox--$version.sql$" | sed "s|^|$("$pg_config" --sharedir)/extension/|") \
         "$("$pg_config" --sharedir)/extension/outbox--$version.sql"; do
    grep -qxF "$f" <<<"$shipped" || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] && ok "the package holds outbox.so, outbox.control and every SQL script" ||
    not_ok "the package lacks ${missing[*]}"

echo "== the suites against the installed package: ${suites[*]} (TAP: $tap_tests)"
log=$(mktemp)
PG_CONFIG=$pg_config OUTBOX_WORK=$work/test OUTBOX_TAP_TESTS=$tap_tests \
    bash "$src/scripts/test.sh" --installed "${suites[@]}" 2>&1 |
    sed -u -E 's/^([0-9]+ passed, [0-9]+ failed)$/== installed package suites: \1/' | tee "$log"
line=$(grep -E '^== installed package suites: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
rm -f "$log"
if [ -n "$line" ]; then
    passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')))
else
    not_ok "scripts/test.sh --installed printed no summary"
fi
finish
