#!/usr/bin/env bash
# The release's metadata agree, and `make dist` makes its archives.
#
#   bash scripts/check-release.sh
#
# Checks, one line each, then "N passed, N failed":
#   - META.json is valid for PGXN (meta-spec 1.0.0: the required keys, semantic
#     versions, a license and release status the spec knows, provides with an
#     existing file), and its version and provides.outbox.version are
#     outbox.control's default_version
#   - debian/changelog's upstream version, the CHANGELOG.md heading and the
#     install script's upgrade path from 0.1.0 are there for that version
#   - make dist: dist/outbox-<version>.zip and .tar.gz hold the committed tree
#     under outbox-<version>/, with META.json, the control file, the install
#     scripts and the upgrade scripts (needs git: run it in a clone)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0
failed=0
check() {  # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok - $what"; passed=$((passed + 1)); else echo "not ok - $what"; failed=$((failed + 1)); fi
}

version=$(sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" outbox.control)
echo "== outbox.control: default_version $version"

meta_errors=$(python3 - "$version" <<'PY'
import json, re, os, sys
version = sys.argv[1]
semver = re.compile(r'^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+)?$')
errors = []
try:
    meta = json.load(open('META.json'))
except Exception as e:
    print(f'META.json is not JSON: {e}'); sys.exit(0)
for key in ('name', 'abstract', 'maintainer', 'license', 'provides', 'meta-spec', 'version'):
    if key not in meta:
        errors.append(f'required key {key} missing')
spec = meta.get('meta-spec', {})
if spec.get('version') != '1.0.0':
    errors.append(f'meta-spec.version is {spec.get("version")!r}, not 1.0.0')
if not semver.match(str(meta.get('version', ''))):
    errors.append(f'version {meta.get("version")!r} is not a semantic version')
if meta.get('version') != version:
    errors.append(f'version {meta.get("version")!r} is not outbox.control\'s default_version {version!r}')
if not re.match(r'^[a-z][a-z0-9_-]*$', str(meta.get('name', ''))):
    errors.append('name is not a valid distribution name')
licenses = {'agpl_3', 'apache_1_1', 'apache_2_0', 'artistic_1', 'artistic_2', 'bsd', 'freebsd', 'gfdl_1_2',
            'gfdl_1_3', 'gpl_1', 'gpl_2', 'gpl_3', 'lgpl_2_1', 'lgpl_3_0', 'mit', 'mozilla_1_0', 'mozilla_1_1',
            'openssl', 'perl_5', 'postgresql', 'qpl_1_0', 'ssleay', 'sun', 'zlib', 'open_source',
            'restricted', 'unrestricted', 'unknown'}
lic = meta.get('license')
if not ((isinstance(lic, str) and lic in licenses) or (isinstance(lic, list) and lic and set(lic) <= licenses)
        or (isinstance(lic, dict) and lic)):
    errors.append(f'license {lic!r} is not one the spec knows')
m = meta.get('maintainer')
if not (isinstance(m, str) and m) and not (isinstance(m, list) and m and all(isinstance(x, str) and x for x in m)):
    errors.append('maintainer is neither a string nor a list of strings')
if meta.get('release_status', 'stable') not in ('stable', 'testing', 'unstable'):
    errors.append(f'release_status {meta.get("release_status")!r} is not stable, testing or unstable')
provides = meta.get('provides', {})
if not isinstance(provides, dict) or not provides:
    errors.append('provides is empty')
else:
    for ext, p in provides.items():
        if not os.path.isfile(p.get('file', '')):
            errors.append(f'provides.{ext}.file {p.get("file")!r} does not exist')
        if not semver.match(str(p.get('version', ''))):
            errors.append(f'provides.{ext}.version {p.get("version")!r} is not a semantic version')
        if 'docfile' in p and not os.path.isfile(p['docfile']):
            errors.append(f'provides.{ext}.docfile {p["docfile"]!r} does not exist')
    if provides.get('outbox', {}).get('version') != version:
        errors.append(f'provides.outbox.version is not outbox.control\'s default_version {version!r}')
for phase in meta.get('prereqs', {}).values():
    for rel in phase.values():
        for name, v in rel.items():
            if not (v == 0 or v == '0' or semver.match(str(v))):
                errors.append(f'prereq {name} {v!r} is not a semantic version')
print('\n'.join(errors))
PY
)
[ -n "$meta_errors" ] && printf '%s\n' "$meta_errors" | sed 's/^/# META.json: /'
check "META.json is valid for PGXN (meta-spec 1.0.0) and says version $version" test -z "$meta_errors"

deb=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
check "debian/changelog's version $deb is $version-<revision>" test "${deb%-*}" = "$version"
check "CHANGELOG.md has a section for $version" grep -qE "^## $(printf %s "$version" | sed 's/\./\\./g')( |$)" CHANGELOG.md
check "sql/ has an upgrade path from 0.1.0 to $version" \
    bash -c "ls sql/outbox--*--*.sql | sed -E 's|.*outbox--(.*)--(.*)\.sql|\1 \2|' | awk -v to='$version' '
        { next_of[\$1] = next_of[\$1] \" \" \$2 }
        END { n = split(\"0.1.0\", q); seen[\"0.1.0\"] = 1
              for (i = 1; i <= n; i++) { m = split(next_of[q[i]], t, \" \")
                  for (j = 1; j <= m; j++) if (!(t[j] in seen)) { seen[t[j]] = 1; q[++n] = t[j] } }
              exit !(to in seen) }'"

if git rev-parse --git-dir >/dev/null 2>&1; then
    rm -rf dist
    if make -s dist >/dev/null 2>&1; then
        for f in dist/outbox-$version.zip dist/outbox-$version.tar.gz; do
            list=$(case $f in *.zip) python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$f" ;;
                              *) tar -tzf "$f" ;; esac)
            want=(META.json outbox.control Makefile README.md CHANGELOG.md LICENSE sql/outbox.sql $(git ls-files 'sql/outbox--*.sql'))
            lacks=()
            for w in "${want[@]}"; do grep -qxF "outbox-$version/$w" <<<"$list" || lacks+=("$w"); done
            outside=$(grep -vc "^outbox-$version/" <<<"$list")
            tracked=$(git ls-files | wc -l); files=$(grep -vc '/$' <<<"$list")
            [ ${#lacks[@]} -eq 0 ] || echo "# $f lacks: ${lacks[*]}"
            check "make dist: $f holds the $tracked committed files under outbox-$version/" \
                test ${#lacks[@]} -eq 0 -a "$outside" -eq 0 -a "$files" -eq "$tracked"
        done
        archived=$(python3 -c 'import json, sys, zipfile
print(json.loads(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))["version"])' \
            "dist/outbox-$version.zip" "outbox-$version/META.json" 2>&1)
        [ "$archived" = "$version" ] || echo "# the archive's META.json says $archived (is META.json committed?)"
        check "make dist: the archive's META.json says $version" test "$archived" = "$version"
    else
        check "make dist" false
    fi
else
    echo "# not a git clone: make dist not checked"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
