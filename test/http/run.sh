#!/usr/bin/env bash
# The HTTP sink's engine test, without PostgreSQL: build test/http/engine_test.cpp
# with the pure engine files into a temporary folder, start the local webhook
# server (test/http/server.py), run the test against it. Prints its
# "ok N - ..." / "not ok N - ..." lines; exits non-zero on any failure.
#
#   bash test/http/run.sh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/outbox-http.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "# build (warnings are errors)"
if ! g++ -std=c++17 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -I"$root/include" \
        "$here/engine_test.cpp" "$root/src/http_client.cpp" "$root/src/webhook_signature.cpp" \
        -lcurl -lcrypto -lfmt -o "$tmp/engine_test" 2>"$tmp/build.log"; then
    cat "$tmp/build.log"
    echo "not ok 1 - build the engine test"
    exit 1
fi

python3 "$here/server.py" --port 0 --ready-file "$tmp/ready" 2>"$tmp/server.log" &
server_pid=$!
for _ in $(seq 100); do
    [ -s "$tmp/ready" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ ! -s "$tmp/ready" ]; then
    cat "$tmp/server.log"
    echo "not ok 1 - start the test server (test/http/server.py)"
    exit 1
fi
port=$(sed -E 's/.*"port": *([0-9]+).*/\1/' "$tmp/ready")
echo "# test server on 127.0.0.1:$port"

# Bounded: every wait inside is bounded too; this catches a hang anyway.
HTTP_TEST_PORT=$port timeout 120 "$tmp/engine_test"
rc=$?
[ $rc -eq 124 ] && echo "not ok - the engine test did not finish within 120 s"
if [ $rc -ne 0 ] && [ -s "$tmp/server.log" ]; then
    echo "# server log:"; sed 's/^/# /' "$tmp/server.log" | tail -n 40
fi
exit $rc
