// Publishing from Drizzle inside db.transaction(), through PgBouncer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { eq, sql, TransactionRollbackError } from 'drizzle-orm';
import { publish } from '../outbox.ts';
import { placeOrder } from '../place-order.ts';
import { orders, outboxEvents, outboxEventsArchive } from '../schema.ts';
import { connect, whereIs, claimAndComplete, fixtureText, quick, hasSubscriptions, waitForDelivery,
         noSubscriptionsMessage } from './helpers.ts';

const { pool, db } = connect();
after(() => pool.end());
const fixture = JSON.parse(fixtureText);

test('rollback (tx.rollback()): the order and the event do not exist', async () => {
  let eventId = '';
  let orderId = 0;
  await assert.rejects(db.transaction(async (tx) => {
    const [row] = await tx.insert(orders).values({ sku: 'SKU-RB', quantity: 1, customer: 'drizzle-rollback' })
      .returning({ id: orders.id });
    orderId = row.id;
    eventId = await publish(tx, 'example.drizzle.order.placed', { orderId });
    tx.rollback();
  }), TransactionRollbackError);
  assert.ok(eventId);
  assert.equal(await whereIs(db, eventId), null);
  assert.deepEqual(await db.select().from(orders).where(eq(orders.id, orderId)), []);
});

test('commit: the order and its event are there (read with the Drizzle schema); claimed and completed (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(db, { sku: 'SKU-1', quantity: 2, customer: 'drizzle-commit' },
                                                'example.drizzle.order.placed');
  const [event] = await db.select().from(outboxEvents).where(eq(outboxEvents.id, eventId));
  assert.equal(event.status, 'created');
  assert.equal(event.orderingKey, 'customer:drizzle-commit');
  assert.equal(typeof event.seq, 'bigint');
  assert.deepEqual(event.payload, { orderId, sku: 'SKU-1', quantity: 2, customer: 'drizzle-commit' });
  const [got] = await claimAndComplete(db, 'example.drizzle.order.placed');
  assert.equal(got.id, eventId);
  const [archived] = await db.select().from(outboxEventsArchive).where(eq(outboxEventsArchive.id, eventId));
  assert.equal(archived.status, 'completed');
  assert.equal(archived.seq, event.seq);
  assert.ok(archived.completedOn instanceof Date);
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); the JS reader rounds them like JSON.parse', async () => {
  const eventId = await db.transaction((tx) => publish(tx, 'example.drizzle.payload', fixtureText));
  const { rows: [cmp] } = await db.execute<{ same: boolean; beyond: string }>(sql`
    SELECT payload = ${fixtureText}::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond
      FROM outbox_events WHERE id = ${eventId}`);
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993' });
  const [event] = await db.select({ payload: outboxEvents.payload }).from(outboxEvents).where(eq(outboxEvents.id, eventId));
  const payload = event.payload as any;
  assert.deepEqual(payload, fixture);
  assert.equal(payload.customer.combining, 'e\u0301 a\u030a n\u0303');
  assert.equal(payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal(payload.numbers.beyond_2_53, 9007199254740992); // rounded by JSON.parse in the driver
  const [got] = await claimAndComplete(db, 'example.drizzle.payload');
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
});

test('nested transaction (savepoint): an inner rollback drops its event, the outer one commits its own', async () => {
  let outerId = '';
  let innerId = '';
  await db.transaction(async (tx) => {
    outerId = await publish(tx, 'example.drizzle.nested', { level: 'outer' });
    await assert.rejects(tx.transaction(async (inner) => {
      innerId = await publish(inner, 'example.drizzle.nested', { level: 'inner' });
      inner.rollback();
    }));
  });
  assert.equal(await whereIs(db, innerId), null);
  assert.deepEqual(await whereIs(db, outerId), { place: 'outbox', status: 'created' });
  const got = await claimAndComplete(db, 'example.drizzle.nested');
  assert.deepEqual(got.map((r) => r.id), [outerId]);
});

test('concurrent Drizzle transactions through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(db, { sku: `SKU-C${i}`, quantity: 1, customer: `drizzle-${i % 4}` }, 'example.drizzle.concurrent')));
  const got = await claimAndComplete(db, 'example.drizzle.concurrent', n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(db))) return t.skip(noSubscriptionsMessage);
  const eventId = await db.transaction(async (tx) => {
    await tx.insert(orders).values({ sku: 'SKU-D', quantity: 1, customer: 'drizzle-delivery' });
    return publish(tx, 'example.delivery.drizzle', fixtureText);
  });
  const delivered = await waitForDelivery(db, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  const { rows: [cmp] } = await db.execute<{ same: boolean }>(
    sql`SELECT ${delivered!.payload_text}::jsonb = ${fixtureText}::jsonb AS same`);
  assert.equal(cmp.same, true);
});
