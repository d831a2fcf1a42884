#!/usr/bin/env bash
# The Kafka sink kind's test, without PostgreSQL: build the mock cluster
# (test/kafka/mockcluster.c) and test/kafka/sink_test.cpp with the pure sink
# files into a temporary folder and run the test; it starts the cluster
# itself. Then the Kafka consumer example's test (examples/kafka-consumer/
# test.sh: kafkajs from npm, against the mock cluster), numbered on. Prints
# "ok N - ..." / "not ok N - ..." lines; exits non-zero on any failure.
#
#   bash test/kafka/run.sh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/outbox-kafka.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "# build (warnings are errors)"
if ! cc -O1 -g -Wall -Wextra -Werror "$here/mockcluster.c" $(pkg-config --cflags --libs rdkafka) \
        -o "$tmp/mockcluster" 2>"$tmp/build.log" ||
   ! g++ -std=c++17 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -I"$root/include" \
        "$here/sink_test.cpp" "$root/src/sink_kafka.cpp" "$root/src/sinks.cpp" "$root/src/sink_http.cpp" \
        "$root/src/http_client.cpp" "$root/src/webhook_signature.cpp" \
        $(pkg-config --cflags --libs rdkafka) -lcurl -lcrypto -lfmt -o "$tmp/sink_test" 2>>"$tmp/build.log"; then
    cat "$tmp/build.log"
    echo "not ok 1 - build the Kafka sink test"
    exit 1
fi

# Bounded: every wait inside is bounded too; this catches a hang anyway.
MOCKCLUSTER="$tmp/mockcluster" KAFKA_TEST_DIR="$tmp" timeout 300 "$tmp/sink_test" | tee "$tmp/sink_test.out"
rc=${PIPESTATUS[0]}
[ $rc -eq 124 ] && echo "not ok - the Kafka sink test did not finish within 300 s"

# The consumer example (its own "ok - kafka-consumer: ..." lines, numbered on).
n=$(grep -cE '^(not )?ok [0-9]+' "$tmp/sink_test.out")
if command -v node >/dev/null && command -v npm >/dev/null; then
    timeout 300 bash "$root/examples/kafka-consumer/test.sh" 2>&1 |
        awk -v n="$n" '/^(not )?ok - / { n++; sub(/^ok - /, "ok " n " - "); sub(/^not ok - /, "not ok " n " - ") } { print }'
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
else
    echo "not ok $((n + 1)) - examples/kafka-consumer: node and npm are needed"
    rc=1
fi
exit $rc
