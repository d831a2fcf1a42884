// Publishing from Prisma Next inside db.transaction(), through PgBouncer:
// tx.orm writes the order, tx.sql + tx.execute publish beside it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { newDb } from '../db.ts';
import { publishForOrder } from '../outbox.ts';
import { placeOrder } from '../place-order.ts';
import { claimAndComplete, fixtureText, hasSubscriptions, newPool, noSubscriptionsMessage, quick, waitForDelivery,
         whereIs } from './helpers.ts';

const db = newDb();
const pool = newPool();
after(() => Promise.all([db.close(), pool.end()]));
const fixture = JSON.parse(fixtureText);

test('rollback (the callback throws): the order (tx.orm) and the event (tx.sql) do not exist', async () => {
  let eventId = '';
  let orderId = 0;
  await assert.rejects(db.transaction(async (tx) => {
    const order = await tx.orm.public.Order.create({ sku: 'SKU-RB', quantity: 1, customer: 'prisma-next-rollback' });
    orderId = order.id;
    eventId = await publishForOrder(tx, order.id, 'example.prisma-next.order.placed', { orderId: order.id });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.ok(eventId && orderId);
  assert.equal(await whereIs(pool, eventId), null);
  assert.equal(await db.orm.public.Order.where({ id: orderId }).first(), null);
});

test('commit: the order and its event are there (read with db.orm); claimed and completed (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(db, { sku: 'SKU-1', quantity: 2, customer: 'prisma-next-commit' },
                                                'example.prisma-next.order.placed');
  const order = await db.orm.public.Order.where({ id: orderId }).first();
  assert.equal(order?.customer, 'prisma-next-commit');
  assert.ok(order?.createdAt instanceof Date);
  const event = await db.orm.public.OutboxEvent.where({ id: eventId }).first();
  assert.ok(event);
  assert.equal(event.status, 'created');
  assert.equal(event.orderingKey, 'customer:prisma-next-commit');
  // int8 comes back from pg as a string (Prisma Next 0.16 types it number): compare as text.
  assert.deepEqual({ ...(event.payload as any), orderId: String((event.payload as any).orderId) },
                   { orderId: String(orderId), sku: 'SKU-1', quantity: 2, customer: 'prisma-next-commit' });
  const [got] = await claimAndComplete(pool, 'example.prisma-next.order.placed');
  assert.equal(got.id, eventId);
  assert.equal(got.attempt, 1);
  assert.deepEqual(await whereIs(pool, eventId), { place: 'archive', status: 'completed' });
});

test('no order visible in the transaction, no event: publishForOrder of an order id that does not exist publishes nothing', async () => {
  await assert.rejects(db.transaction((tx) => publishForOrder(tx, -1, 'example.prisma-next.orphan', {})),
                       /not visible in this transaction/);
  const { rows: [n] } = await pool.query("SELECT count(*)::int AS n FROM outbox_events WHERE type = 'example.prisma-next.orphan'");
  assert.equal(n.n, 0);
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); read with db.orm like JSON.parse', async () => {
  const eventId = await db.transaction(async (tx) => {
    const order = await tx.orm.public.Order.create({ sku: 'SKU-P', quantity: 1, customer: 'prisma-next-payload' });
    return publishForOrder(tx, order.id, 'example.prisma-next.payload', fixtureText);
  });
  const { rows: [cmp] } = await pool.query(
    `SELECT payload = $2::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond,
            payload->'customer'->>'combining' AS combining
       FROM outbox_events WHERE id = $1`, [eventId, fixtureText]);
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993', combining: 'e\u0301 a\u030a n\u0303' });
  const event = await db.orm.public.OutboxEvent.where({ id: eventId }).first();
  assert.deepEqual(event?.payload, fixture);
  const [got] = await claimAndComplete(pool, 'example.prisma-next.payload');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, fixture);
  assert.equal(got.payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.match(got.payload_text, /"huge": 123456789012345678901234567890/);
});

test('concurrent db.transaction() calls through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 12 : 100;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(db, { sku: `SKU-C${i}`, quantity: 1, customer: `prisma-next-${i % 4}` }, 'example.prisma-next.concurrent')));
  const got = await claimAndComplete(pool, 'example.prisma-next.concurrent', n);
  assert.equal(got.length, n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(pool))) return t.skip(noSubscriptionsMessage);
  const { eventId } = await db.transaction(async (tx) => {
    const order = await tx.orm.public.Order.create({ sku: 'SKU-D', quantity: 1, customer: 'prisma-next-delivery' });
    return { eventId: await publishForOrder(tx, order.id, 'example.delivery.prisma-next', fixtureText) };
  });
  const delivered = await waitForDelivery(pool, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  assert.equal(delivered.attempt, 1);
  const { rows: [cmp] } = await pool.query('SELECT $1::jsonb = $2::jsonb AS same', [delivered.payload_text, fixtureText]);
  assert.equal(cmp.same, true);
});
