// A Kafka consumer of outbox events (kafkajs): one member of a consumer
// group, reading the topics the outbox's Kafka target writes (Debezium's
// outbox layout: key = ordering key, value = the payload's JSON, headers
// `id` and `type` and the event's own headers).
//
// Delivery is at least once: after a crash or a timed-out delivery report
// the same event can be on the topic twice (as two records). Dedupe on the
// `id` header, never on the offset: `handle` below runs once per event id.
// Here the ids handled are kept in a file (--seen); a real consumer records the id in
// the same database transaction as the effect of handling it, e.g.
//
//   CREATE TABLE processed_events (id uuid PRIMARY KEY);
//   BEGIN;
//   INSERT INTO processed_events VALUES ($1) ON CONFLICT DO NOTHING;  -- 0 rows: a duplicate, skip
//   ... the effect ...
//   COMMIT;
//
// and commits the Kafka offset only after that transaction (kafkajs's
// eachMessage commits after it returns).
//
//   node consumer.js --brokers host:port[,...] --group G --topic T [--topic T...]
//                    [--seen FILE] [--idle-ms N] [--out FILE]
// Prints one JSON line per handled event ({id, type, key, topic, partition,
// offset, payload}) to stdout or FILE; with --idle-ms it stops after that
// long without a record (for tests), else it runs until SIGINT/SIGTERM.
'use strict';
const { Kafka, logLevel } = require('kafkajs');
const fs = require('fs');

function args(argv) {
    const a = { topics: [], idleMs: 0, out: null, seen: null };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i], v = argv[i + 1];
        if (k === '--brokers') { a.brokers = v.split(','); i++; }
        else if (k === '--group') { a.group = v; i++; }
        else if (k === '--topic') { a.topics.push(v); i++; }
        else if (k === '--idle-ms') { a.idleMs = Number(v); i++; }
        else if (k === '--out') { a.out = v; i++; }
        else if (k === '--seen') { a.seen = v; i++; }
        else throw new Error(`unknown argument ${k}`);
    }
    if (!a.brokers || !a.group || a.topics.length === 0) throw new Error('need --brokers, --group and --topic');
    return a;
}

async function main() {
    const a = args(process.argv);
    const out = a.out ? fs.createWriteStream(a.out, { flags: 'a' }) : process.stdout;
    const kafka = new Kafka({ clientId: 'outbox-example', brokers: a.brokers, logLevel: logLevel.WARN });
    const consumer = kafka.consumer({ groupId: a.group, sessionTimeout: 10000, heartbeatInterval: 1000 });
    // The ids handled (see above: a table in a real consumer).
    const seen = new Set(a.seen && fs.existsSync(a.seen) ? fs.readFileSync(a.seen, 'utf8').split('\n').filter(Boolean) : []);
    const remember = (id) => { seen.add(id); if (a.seen) fs.appendFileSync(a.seen, id + '\n'); };
    let records = 0, duplicates = 0, handled = 0, last = Date.now();

    // Handle one event: here, print it.
    const handle = (ev) => { handled++; out.write(JSON.stringify(ev) + '\n'); };

    await consumer.connect();
    for (const topic of a.topics) await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
            records++;
            last = Date.now();
            const id = message.headers.id && message.headers.id.toString();
            if (!id) return;                       // not an outbox record
            if (seen.has(id)) { duplicates++; return; }
            handle({
                id,
                type: message.headers.type && message.headers.type.toString(),
                key: message.key && message.key.toString(),
                topic, partition, offset: message.offset,
                payload: JSON.parse(message.value.toString()),
            });
            remember(id);
        },
    });
    const stop = async () => {
        await consumer.disconnect();
        process.stderr.write(`# ${records} records, ${handled} events handled, ${duplicates} duplicates skipped\n`);
        if (a.out) out.end();
    };
    if (a.idleMs > 0) {
        await new Promise((resolve) => {
            const t = setInterval(() => { if (Date.now() - last >= a.idleMs) { clearInterval(t); resolve(); } }, 100);
        });
        await stop();
    } else {
        await new Promise((resolve) => { process.once('SIGINT', resolve); process.once('SIGTERM', resolve); });
        await stop();
    }
}

main().catch((e) => { console.error(e); process.exit(1); });
