#!/usr/bin/env bash
# The example's test: against librdkafka's mock cluster (test/kafka/
# mockcluster.c, 3 brokers), records laid out as the outbox writes them, some
# twice; members of one consumer group (consumer.js), one after another,
# handle each event exactly once, the duplicates skipped (also those re-sent
# after the first member had read them); a later member has nothing left.
# (One after another: kafkajs 2.2.4 fails in SyncGroup against librdkafka
# 2.0.2's mock cluster when a second member joins a running group; the
# concurrent group is tested with librdkafka's consumer, TAP 050.) Prints "ok - ..." /
# "not ok - ..." lines; exits non-zero on a failure.
#   bash examples/kafka-consumer/test.sh     (npm ci first)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/outbox-kafka-consumer.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail=0
ok() { echo "ok - kafka-consumer: $*"; }
notok() { echo "not ok - kafka-consumer: $*"; fail=1; }

[ -d "$here/node_modules/kafkajs" ] || (cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1) ||
    { notok "npm ci (kafkajs)"; exit 1; }
cc -O1 -o "$tmp/mockcluster" "$root/test/kafka/mockcluster.c" $(pkg-config --cflags --libs rdkafka) ||
    { notok "build the mock cluster"; exit 1; }
mkfifo "$tmp/in"
sleep 100000 >"$tmp/in" & pids+=($!)
"$tmp/mockcluster" 3 outbox.event.order:3 <"$tmp/in" >"$tmp/mock.out" 2>"$tmp/mock.log" & pids+=($!)
for i in $(seq 1 100); do [ -s "$tmp/mock.out" ] && break; sleep 0.1; done
brokers=$(head -n 1 "$tmp/mock.out")
[ -n "$brokers" ] || { cat "$tmp/mock.log"; notok "start the mock cluster"; exit 1; }

c() { timeout 120 node "$here/consumer.js" --brokers "$brokers" --group example --topic outbox.event.order \
        --seen "$tmp/seen" --idle-ms 3000 --out "$1"; }
# 300 events, 60 of them twice; a member reads them.
timeout 60 node "$here/test-produce.js" "$brokers" outbox.event.order 300 60 >"$tmp/ids1" || { notok "produce"; exit 1; }
c "$tmp/a.jsonl" 2>"$tmp/a.err" || { cat "$tmp/a.err"; notok "the first member ran"; exit 1; }
# 200 more, and 60 of the first 300 again (re-sent after a crash); the next member.
timeout 60 node "$here/test-produce.js" "$brokers" outbox.event.order 200 60 "$tmp/ids1" >"$tmp/ids2" || { notok "produce"; exit 1; }
c "$tmp/b.jsonl" 2>"$tmp/b.err" || { cat "$tmp/b.err"; notok "the second member ran"; exit 1; }
sed 's/^/# /' "$tmp/a.err" "$tmp/b.err"
count() { node -e 'const fs=require("fs"); const want=fs.readFileSync(process.argv[1],"utf8").split("\n").filter(Boolean); const got=fs.readFileSync(process.argv[2],"utf8").split("\n").filter(Boolean).map(l=>JSON.parse(l).id); const g=new Set(got); console.log(got.length, g.size, want.filter(x=>g.has(x)).length)' "$@"; }
read -r n d w <<<"$(count "$tmp/ids1" "$tmp/a.jsonl")"
[ "$n $d $w" = "300 300 300" ] && ok "the first member handled each of the 300 events once (60 duplicates skipped)" ||
    notok "the first member handled $n events, $d distinct, $w of the 300"
read -r n d w <<<"$(count "$tmp/ids2" "$tmp/b.jsonl")"
[ "$n $d $w" = "200 200 200" ] && ok "the next member of the group handled each of the 200 later events once, and none of the 60 re-sent earlier ones" ||
    notok "the next member handled $n events, $d distinct, $w of the 200"
c "$tmp/c.jsonl" 2>"$tmp/c.err"
left=$(cat "$tmp/c.jsonl" 2>/dev/null | wc -l)
[ "$left" = 0 ] && ok "a later member of the group has nothing left (offsets committed)" || notok "a later member handled $left"
exit $fail
