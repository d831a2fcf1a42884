// Publishing from TypeORM inside its transactions, through PgBouncer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Order, OutboxEvent, OutboxEventArchive } from '../entities.ts';
import { publish } from '../outbox.ts';
import { newDataSource, placeOrder } from '../place-order.ts';
import { whereIs, claimAndComplete, fixtureText, quick, hasSubscriptions, waitForDelivery,
         noSubscriptionsMessage } from './helpers.ts';

const ds = newDataSource();
before(() => ds.initialize());
after(() => ds.destroy());
const fixture = JSON.parse(fixtureText);

test('rollback (the callback throws): the order and the event do not exist', async () => {
  let eventId = '';
  let orderId = '';
  await assert.rejects(ds.transaction(async (manager) => {
    const order = await manager.save(manager.create(Order, { sku: 'SKU-RB', quantity: 1, customer: 'typeorm-rollback' }));
    orderId = order.id;
    eventId = await publish(manager, 'example.typeorm.order.placed', { orderId });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.ok(eventId && orderId);
  assert.equal(await whereIs(ds, eventId), null);
  assert.equal(await ds.manager.findOneBy(Order, { id: orderId }), null);
});

test('commit: the order and its event are there (read with the entities); claimed and completed (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(ds, { sku: 'SKU-1', quantity: 2, customer: 'typeorm-commit' },
                                                'example.typeorm.order.placed');
  const order = await ds.manager.findOneByOrFail(Order, { id: orderId });
  assert.equal(order.customer, 'typeorm-commit');
  assert.ok(order.createdAt instanceof Date);
  const event = await ds.manager.findOneByOrFail(OutboxEvent, { id: eventId });
  assert.equal(event.status, 'created');
  assert.equal(event.orderingKey, 'customer:typeorm-commit');
  assert.match(event.seq, /^\d+$/);
  assert.deepEqual(event.payload, { orderId, sku: 'SKU-1', quantity: 2, customer: 'typeorm-commit' });
  const [got] = await claimAndComplete(ds, 'example.typeorm.order.placed');
  assert.equal(got.id, eventId);
  assert.equal(got.attempt, 1);
  const archived = await ds.manager.findOneByOrFail(OutboxEventArchive, { id: eventId });
  assert.equal(archived.status, 'completed');
  assert.equal(archived.seq, event.seq);
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); the JS reader rounds them like JSON.parse', async () => {
  const eventId = await ds.transaction((manager) => publish(manager, 'example.typeorm.payload', fixtureText));
  const [cmp] = await ds.query(
    `SELECT payload = $2::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond,
            payload->'customer'->>'combining' AS combining
       FROM outbox_events WHERE id = $1`, [eventId, fixtureText]);
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993', combining: 'e\u0301 a\u030a n\u0303' });
  const event = await ds.manager.findOneByOrFail(OutboxEvent, { id: eventId });
  assert.deepEqual(event.payload, fixture);
  const [got] = await claimAndComplete(ds, 'example.typeorm.payload');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, fixture);
  assert.equal(got.payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal(got.payload.numbers.beyond_2_53, 9007199254740992); // rounded by JSON.parse in pg
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.match(got.payload_text, /"int64_max": 9223372036854775807/);
});

test('QueryRunner transaction: a nested startTransaction is a savepoint; its rollback drops only its event; rollbackTransaction drops all', async () => {
  const qr = ds.createQueryRunner();
  let outerId = '';
  let innerId = '';
  try {
    await qr.startTransaction();
    outerId = await publish(qr, 'example.typeorm.queryrunner', { level: 'outer' });
    await qr.startTransaction(); // SAVEPOINT
    innerId = await publish(qr, 'example.typeorm.queryrunner', { level: 'inner' });
    await qr.rollbackTransaction(); // ROLLBACK TO SAVEPOINT
    await qr.commitTransaction();
  } finally {
    await qr.release();
  }
  assert.equal(await whereIs(ds, innerId), null);
  assert.deepEqual(await whereIs(ds, outerId), { place: 'outbox', status: 'created' });
  assert.deepEqual((await claimAndComplete(ds, 'example.typeorm.queryrunner')).map((r) => r.id), [outerId]);

  const qr2 = ds.createQueryRunner();
  let droppedId = '';
  try {
    await qr2.startTransaction();
    await qr2.manager.save(qr2.manager.create(Order, { sku: 'SKU-QR', quantity: 1, customer: 'typeorm-queryrunner' }));
    droppedId = await publish(qr2, 'example.typeorm.queryrunner', { rolledBack: true });
    await qr2.rollbackTransaction();
  } finally {
    await qr2.release();
  }
  assert.equal(await whereIs(ds, droppedId), null);
  assert.equal(await ds.manager.findOneBy(Order, { customer: 'typeorm-queryrunner' }), null);
});

test('concurrent TypeORM transactions through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(ds, { sku: `SKU-C${i}`, quantity: 1, customer: `typeorm-${i % 4}` }, 'example.typeorm.concurrent')));
  const got = await claimAndComplete(ds, 'example.typeorm.concurrent', n);
  assert.equal(got.length, n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(ds))) return t.skip(noSubscriptionsMessage);
  const eventId = await ds.transaction(async (manager) => {
    await manager.save(manager.create(Order, { sku: 'SKU-D', quantity: 1, customer: 'typeorm-delivery' }));
    return publish(manager, 'example.delivery.typeorm', fixtureText);
  });
  const delivered = await waitForDelivery(ds, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  assert.equal(delivered.attempt, 1);
  assert.deepEqual(delivered.payload, fixture);
  const [cmp] = await ds.query('SELECT $1::jsonb = $2::jsonb AS same', [delivered.payloadText, fixtureText]);
  assert.equal(cmp.same, true);
});
