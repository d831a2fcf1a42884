#!/usr/bin/env bash
# Tests of the webhook verification examples (no database, loopback only).
#
#   examples/webhooks/run.sh [node] [python]     (default: both)
#
# Prints one line per check: "ok - webhooks-node: description" or
# "not ok - webhooks-python: description"; exits non-zero on any failure
# (a test program that dies without reporting a failure is one).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
langs=()
for arg in "$@"; do
    case $arg in
    node|python) langs+=("$arg") ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
    esac
done
[ ${#langs[@]} -gt 0 ] || langs=(node python)

passed=0
failures=0
say() {
    echo "$*"
    case "$*" in "not ok"*) failures=$((failures + 1)) ;; "ok"*) passed=$((passed + 1)) ;; esac
}

# run NAME DIR COMMAND: the command's "ok N - x" lines become "ok - NAME: x".
run() {
    local name=$1 dir=$2 cmd=$3 out rc
    out=$(mktemp)
    (cd "$dir" && timeout 60 bash -c "$cmd") >"$out" 2>&1
    rc=$?
    local lines
    lines=$(sed -nE -e "s/^(not )?ok [0-9]+ - (.*)$/\1ok - $name: \2/p;t" -e "s/^(not )?ok - (.*)$/\1ok - $name: \2/p" "$out")
    [ -n "$lines" ] && while IFS= read -r line; do say "$line"; done <<<"$lines"
    if grep -q '^not ok' <<<"$lines" || [ $rc -ne 0 ] || [ -z "$lines" ]; then
        echo "# ---- $name output"
        sed 's/^/# /' "$out" | tail -n 60
        grep -q '^not ok' <<<"$lines" || say "not ok - $name: test program exited with status $rc"
    fi
    rm -f "$out"
}

for lang in "${langs[@]}"; do
    case $lang in
    node)
        if command -v node >/dev/null; then run webhooks-node "$here/node" "node test.mjs"
        else say "not ok - webhooks-node: node installed"; fi ;;
    python)
        py=$(command -v python3 || echo /usr/bin/python3)
        run webhooks-python "$here/python" "'$py' -B test_verify.py" ;;
    esac
done

echo "# webhooks: $passed passed, $failures failed"
[ $failures -eq 0 ]
