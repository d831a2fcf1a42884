// Publishing from node-postgres inside its transaction, through PgBouncer.
import { test, after } from 'node:test';
import pg from 'pg';
import assert from 'node:assert/strict';
import { publish, withTransaction } from '../outbox.js';
import { placeOrder } from '../place-order.js';
import { newPool, whereIs, claimAndComplete, fixtureText, quick, hasSubscriptions, waitForDelivery,
         noSubscriptionsMessage } from './helpers.js';

const pool = newPool();
after(() => pool.end());
const fixture = JSON.parse(fixtureText); // JavaScript's view: numbers beyond 2^53 already rounded

test('rollback: the order and the event published in its transaction do not exist', async () => {
  let eventId, orderId;
  await assert.rejects(withTransaction(pool, async (client) => {
    const { rows } = await client.query(
      "INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-RB', 1, 'node-rollback') RETURNING id");
    orderId = rows[0].id;
    eventId = await publish(client, 'example.np.order.placed', { orderId });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.equal(await whereIs(pool, eventId), null);
  const { rowCount } = await pool.query('SELECT 1 FROM orders WHERE id = $1', [orderId]);
  assert.equal(rowCount, 0);
});

test('commit: the order and its event are there; a consumer claims and completes it (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(pool, { sku: 'SKU-1', quantity: 2, customer: 'node-commit',
                                                        eventType: 'example.np.order.placed' });
  assert.deepEqual(await whereIs(pool, eventId), { place: 'outbox', status: 'created' });
  const [got] = await claimAndComplete(pool, 'example.np.order.placed');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, { orderId, sku: 'SKU-1', quantity: 2, customer: 'node-commit' });
  assert.equal(got.attempt, 1);
  assert.deepEqual(await whereIs(pool, eventId), { place: 'archive', status: 'completed' });
});

test('payload sent as JSON text round-trips exactly: unicode, nesting, numbers beyond 2^53 (digits kept by jsonb)', async () => {
  const eventId = await withTransaction(pool, (client) => publish(client, 'example.np.payload.text', fixtureText));
  // Stored value equals the fixture, compared by PostgreSQL (numeric, not double).
  const { rows: [db] } = await pool.query(
    `SELECT payload = $2::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond,
            payload->'numbers'->>'huge' AS huge, payload->'numbers'->>'exponent' AS exponent,
            payload->'customer'->>'combining' AS combining
       FROM outbox_events WHERE id = $1`, [eventId, fixtureText]);
  assert.equal(db.same, true);
  assert.equal(db.beyond, '9007199254740993');
  assert.equal(db.huge, '123456789012345678901234567890');
  assert.equal(db.exponent, '1000000000000000000000'); // jsonb keeps the value, not the spelling 1e+21
  assert.equal(db.combining, 'e\u0301 a\u030a n\u0303'); // not normalized to NFC
  const [got] = await claimAndComplete(pool, 'example.np.payload.text');
  assert.equal(got.id, eventId);
  // pg parses jsonb with JSON.parse: equal to JavaScript's own parse of the fixture...
  assert.deepEqual(got.payload, fixture);
  assert.equal(got.payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal([...got.payload.customer.emoji].length, 4); // woman, ZWJ, laptop, rocket: code points intact
  assert.equal(got.payload.customer.combining.normalize('NFC'), 'é å ñ');
  // ...which rounds 2^53+1 to 2^53: read payload::text (or send such ids as strings) to keep the digits.
  assert.equal(got.payload.numbers.beyond_2_53, 9007199254740992);
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.match(got.payload_text, /"int64_max": 9223372036854775807/);
});

test('payload sent as a JS object: JavaScript rounds numbers beyond 2^53 before sending; all else exact', async () => {
  const eventId = await withTransaction(pool, (client) => publish(client, 'example.np.payload.object', fixture));
  const { rows: [db] } = await pool.query(
    `SELECT payload->'numbers'->>'beyond_2_53' AS beyond, payload->'numbers'->>'max_safe' AS max_safe,
            payload->'customer' = ($2::jsonb)->'customer' AS same_strings, payload->'nested' = ($2::jsonb)->'nested' AS same_nested
       FROM outbox_events WHERE id = $1`, [eventId, fixtureText]);
  assert.equal(db.beyond, '9007199254740992');
  assert.equal(db.max_safe, '9007199254740991');
  assert.equal(db.same_strings, true);
  assert.equal(db.same_nested, true);
  const [got] = await claimAndComplete(pool, 'example.np.payload.object');
  assert.deepEqual(got.payload, fixture);
});

test('jsonb refuses the NUL character U+0000 in a string (SQLSTATE 22P05): the transaction rolls back, nothing is published', async () => {
  let eventId = null;
  await assert.rejects(
    withTransaction(pool, async (client) => {
      eventId = await publish(client, 'example.np.nul', { text: 'a\u0000b' });
    }),
    (err) => err.code === '22P05');
  assert.equal(eventId, null);
});

test('concurrent publishers through PgBouncer: each transaction commits its order and its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(pool, { sku: `SKU-C${i}`, quantity: 1, customer: `node-concurrent-${i % 5}`,
                       eventType: 'example.np.concurrent' })));
  const ids = results.map((r) => r.eventId);
  const { rows: [c] } = await pool.query(
    "SELECT count(*)::int AS n FROM outbox_events WHERE id = ANY($1::uuid[]) AND type = 'example.np.concurrent'", [ids]);
  assert.equal(c.n, n);
  const got = await claimAndComplete(pool, 'example.np.concurrent', n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(ids));
  // Per ordering key (customer), events were claimed in publish order (seq).
  const { rows: seqs } = await pool.query(
    'SELECT id, seq FROM outbox_events_archive WHERE id = ANY($1::uuid[])', [ids]);
  const seqOf = new Map(seqs.map((r) => [r.id, BigInt(r.seq)]));
  const byKey = new Map();
  for (const r of got) {
    const key = r.payload.customer;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push(seqOf.get(r.id));
  }
  assert.equal(byKey.size, 5);
  for (const claimed of byKey.values()) {
    assert.deepEqual(claimed, [...claimed].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  }
});

test('PgBouncer transaction pooling: one client connection runs on several server sessions (no session state survives)', async () => {
  const a = new pg.Client({ connectionString: process.env.DATABASE_URL });
  const b = new pg.Client({ connectionString: process.env.DATABASE_URL });
  await a.connect();
  await b.connect();
  try {
    const pid = async (c) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    let moved = false;
    for (let i = 0; i < 20 && !moved; i++) {
      const first = await pid(a);
      // b takes a server connection and keeps it in a transaction; when it is
      // the one a just gave back, a's next statement must run in another session.
      await b.query('BEGIN');
      const held = await pid(b);
      if (held === first) {
        const second = await pid(a);
        assert.notEqual(second, first);
        moved = true;
      }
      await b.query('COMMIT');
    }
    assert.ok(moved, 'the second client got the first one\'s server connection');
  } finally {
    await a.end();
    await b.end();
  }
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(pool))) return t.skip(noSubscriptionsMessage);
  const eventId = await withTransaction(pool, async (client) => {
    await client.query("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-D', 1, 'node-delivery')");
    return publish(client, 'example.delivery.node-postgres', fixtureText);
  });
  const delivered = await waitForDelivery(pool, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  const { rows: [cmp] } = await pool.query('SELECT $1::jsonb = $2::jsonb AS same', [delivered.payload_text, fixtureText]);
  assert.equal(cmp.same, true);
  assert.deepEqual(await whereIs(pool, eventId), { place: 'archive', status: 'completed' });
});
