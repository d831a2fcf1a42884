// For test.sh: records as the outbox's Kafka target writes them (key, JSON
// value, headers id and type), some of them twice (as a crash or a
// timed-out delivery report makes them).
//   node test-produce.js BROKERS TOPIC EVENTS DUPLICATES [IDS_FILE]
// Prints the new events' ids; DUPLICATES records are sent again: of this
// call's events, or with IDS_FILE, of the events whose ids it lists (sent
// earlier).
'use strict';
const { Kafka, logLevel, Partitioners } = require('kafkajs');
const crypto = require('crypto');

(async () => {
    const [brokers, topic, events, dups, idsFile] = process.argv.slice(2);
    const kafka = new Kafka({ clientId: 'outbox-example-test', brokers: brokers.split(','), logLevel: logLevel.WARN });
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const recs = [];
    for (let i = 0; i < Number(events); i++) {
        recs.push({
            key: `key${i % 50}`,
            value: JSON.stringify({ i }),
            headers: { id: crypto.randomUUID(), type: 'order.created', tenant: `t${i % 3}` },
        });
    }
    await producer.send({ topic, messages: recs });
    const again = idsFile
        ? require('fs').readFileSync(idsFile, 'utf8').split('\n').filter(Boolean).slice(0, Number(dups)).map((id, i) => ({
            key: `key${i % 50}`, value: JSON.stringify({ i }), headers: { id, type: 'order.created' } }))
        : recs.slice(0, Number(dups));
    await producer.send({ topic, messages: again });
    await producer.disconnect();
    for (const r of recs) console.log(r.headers.id);
})().catch((e) => { console.error(e); process.exit(1); });
