// Publishing from Kysely inside its transactions, through PgBouncer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { newKysely } from '../db.ts';
import { publish } from '../outbox.ts';
import { placeOrder } from '../place-order.ts';
import { whereIs, claimAndComplete, fixtureText, quick, hasSubscriptions, waitForDelivery,
         noSubscriptionsMessage } from './helpers.ts';

const db = newKysely();
after(() => db.destroy());
const fixture = JSON.parse(fixtureText);

test('rollback (the callback throws): the order and the event do not exist', async () => {
  let eventId = '';
  let orderId = '';
  await assert.rejects(db.transaction().execute(async (trx) => {
    ({ id: orderId } = await trx.insertInto('orders').values({ sku: 'SKU-RB', quantity: 1, customer: 'kysely-rollback' })
      .returning('id').executeTakeFirstOrThrow());
    eventId = await publish(trx, 'example.kysely.order.placed', { orderId });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.ok(eventId && orderId);
  assert.equal(await whereIs(db, eventId), null);
  assert.equal(await db.selectFrom('orders').selectAll().where('id', '=', orderId).executeTakeFirst(), undefined);
});

test('commit: the order and its event are there (read with the typed tables); claimed and completed (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(db, { sku: 'SKU-1', quantity: 2, customer: 'kysely-commit' },
                                                'example.kysely.order.placed');
  const event = await db.selectFrom('outbox_events').select(['status', 'ordering_key', 'seq', 'payload'])
    .where('id', '=', eventId).executeTakeFirstOrThrow();
  assert.equal(event.status, 'created');
  assert.equal(event.ordering_key, 'customer:kysely-commit');
  assert.match(event.seq, /^\d+$/);
  assert.deepEqual(event.payload, { orderId, sku: 'SKU-1', quantity: 2, customer: 'kysely-commit' });
  const [got] = await claimAndComplete(db, 'example.kysely.order.placed');
  assert.equal(got.id, eventId);
  assert.equal(got.attempt, 1);
  const archived = await db.selectFrom('outbox_events_archive').select(['status', 'seq']).where('id', '=', eventId)
    .executeTakeFirstOrThrow();
  assert.deepEqual(archived, { status: 'completed', seq: event.seq });
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); the JS reader rounds them like JSON.parse', async () => {
  const eventId = await db.transaction().execute((trx) => publish(trx, 'example.kysely.payload', fixtureText));
  const { rows: [cmp] } = await sql<{ same: boolean; beyond: string; combining: string }>`
    SELECT payload = ${fixtureText}::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond,
           payload->'customer'->>'combining' AS combining
      FROM outbox_events WHERE id = ${eventId}`.execute(db);
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993', combining: 'e\u0301 a\u030a n\u0303' });
  const [got] = await claimAndComplete(db, 'example.kysely.payload');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, fixture);
  assert.equal(got.payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal(got.payload.numbers.beyond_2_53, 9007199254740992); // rounded by JSON.parse in pg
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.match(got.payload_text, /"huge": 123456789012345678901234567890/);
});

test('controlled transaction (db.startTransaction()): rollbackToSavepoint drops the event after the savepoint, commit keeps the one before', async () => {
  const trx = await db.startTransaction().execute();
  let keptId = '';
  let droppedId = '';
  try {
    keptId = await publish(trx, 'example.kysely.savepoint', { step: 'before the savepoint' });
    const sp = await trx.savepoint('before_payment').execute();
    droppedId = await publish(sp, 'example.kysely.savepoint', { step: 'after the savepoint' });
    await sp.rollbackToSavepoint('before_payment').execute();
    await trx.commit().execute();
  } catch (e) {
    await trx.rollback().execute();
    throw e;
  }
  assert.equal(await whereIs(db, droppedId), null);
  assert.deepEqual(await whereIs(db, keptId), { place: 'outbox', status: 'created' });
  const got = await claimAndComplete(db, 'example.kysely.savepoint');
  assert.deepEqual(got.map((r) => r.id), [keptId]);
});

test('controlled transaction rolled back (trx.rollback()): its event does not exist', async () => {
  const trx = await db.startTransaction().execute();
  const eventId = await publish(trx, 'example.kysely.controlled', { rolledBack: true });
  await trx.rollback().execute();
  assert.equal(await whereIs(db, eventId), null);
});

test('concurrent Kysely transactions through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(db, { sku: `SKU-C${i}`, quantity: 1, customer: `kysely-${i % 4}` }, 'example.kysely.concurrent')));
  const got = await claimAndComplete(db, 'example.kysely.concurrent', n);
  assert.equal(got.length, n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(db))) return t.skip(noSubscriptionsMessage);
  const eventId = await db.transaction().execute(async (trx) => {
    await trx.insertInto('orders').values({ sku: 'SKU-D', quantity: 1, customer: 'kysely-delivery' }).execute();
    return publish(trx, 'example.delivery.kysely', fixtureText);
  });
  const delivered = await waitForDelivery(db, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  assert.equal(delivered.attempt, 1);
  const { rows: [cmp] } = await sql<{ same: boolean }>`SELECT ${delivered.payload_text}::jsonb = ${fixtureText}::jsonb AS same`
    .execute(db);
  assert.equal(cmp.same, true);
});
