// Publishing from Knex inside knex.transaction(), through PgBouncer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { publish } from '../outbox.js';
import { newKnex, placeOrder } from '../place-order.js';
import { whereIs, claimAndComplete, fixtureText, quick, hasSubscriptions, waitForDelivery,
         noSubscriptionsMessage } from './helpers.js';

const knex = newKnex();
after(() => knex.destroy());
const fixture = JSON.parse(fixtureText); // JavaScript's view: numbers beyond 2^53 already rounded

test('rollback (the callback throws): the order and the event published in its transaction do not exist', async () => {
  let eventId, orderId;
  await assert.rejects(knex.transaction(async (trx) => {
    const [row] = await trx('orders').insert({ sku: 'SKU-RB', quantity: 1, customer: 'knex-rollback' }).returning('id');
    orderId = row.id;
    eventId = await publish(trx, 'example.knex.order.placed', { orderId });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.ok(eventId);
  assert.equal(await whereIs(knex, eventId), null);
  assert.equal(await knex('orders').where({ id: orderId }).first(), undefined);
});

test('rollback (trx.rollback()): nothing stays either', async () => {
  let eventId;
  await assert.rejects(knex.transaction(async (trx) => {
    await trx('orders').insert({ sku: 'SKU-RB2', quantity: 1, customer: 'knex-rollback-explicit' });
    eventId = await publish(trx, 'example.knex.order.placed', { explicit: true });
    await trx.rollback(new Error('cancelled'));
  }), /cancelled/);
  assert.equal(await whereIs(knex, eventId), null);
  assert.equal(await knex('orders').where({ customer: 'knex-rollback-explicit' }).first(), undefined);
});

test('commit: the order and its event are there; a consumer claims and completes it (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(knex, { sku: 'SKU-1', quantity: 2, customer: 'knex-commit' },
                                                'example.knex.order.placed');
  assert.deepEqual(await whereIs(knex, eventId), { place: 'outbox', status: 'created' });
  const event = await knex('outbox_events').where({ id: eventId }).first('ordering_key', 'type');
  assert.deepEqual(event, { ordering_key: 'customer:knex-commit', type: 'example.knex.order.placed' });
  assert.ok(await knex('orders').where({ id: orderId, customer: 'knex-commit' }).first());
  const [got] = await claimAndComplete(knex, 'example.knex.order.placed');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, { orderId, sku: 'SKU-1', quantity: 2, customer: 'knex-commit' });
  assert.equal(got.attempt, 1);
  assert.deepEqual(await whereIs(knex, eventId), { place: 'archive', status: 'completed' });
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); the JS reader rounds them like JSON.parse', async () => {
  const eventId = await knex.transaction((trx) => publish(trx, 'example.knex.payload', fixtureText));
  const { rows: [cmp] } = await knex.raw(
    `SELECT payload = ?::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond,
            payload->'numbers'->>'huge' AS huge, payload->'customer'->>'combining' AS combining
       FROM outbox_events WHERE id = ?`, [fixtureText, eventId]);
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993', huge: '123456789012345678901234567890',
                          combining: 'e\u0301 a\u030a n\u0303' });
  const [got] = await claimAndComplete(knex, 'example.knex.payload');
  assert.equal(got.id, eventId);
  assert.deepEqual(got.payload, fixture);
  assert.equal(got.payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal([...got.payload.customer.emoji].length, 4);
  assert.equal(got.payload.numbers.beyond_2_53, 9007199254740992); // rounded by JSON.parse in pg
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.match(got.payload_text, /"int64_max": 9223372036854775807/);
});

test('nested transaction (savepoint): an inner rollback drops its event, the outer one commits its own', async () => {
  let outerId, innerId;
  await knex.transaction(async (trx) => {
    outerId = await publish(trx, 'example.knex.nested', { level: 'outer' });
    await assert.rejects(trx.transaction(async (inner) => {
      innerId = await publish(inner, 'example.knex.nested', { level: 'inner' });
      throw new Error('inner fails');
    }), /inner fails/);
  });
  assert.equal(await whereIs(knex, innerId), null);
  assert.deepEqual(await whereIs(knex, outerId), { place: 'outbox', status: 'created' });
  const got = await claimAndComplete(knex, 'example.knex.nested');
  assert.deepEqual(got.map((r) => r.id), [outerId]);
});

test('concurrent Knex transactions through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(knex, { sku: `SKU-C${i}`, quantity: 1, customer: `knex-${i % 4}` }, 'example.knex.concurrent')));
  const got = await claimAndComplete(knex, 'example.knex.concurrent', n);
  assert.equal(got.length, n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(knex))) return t.skip(noSubscriptionsMessage);
  const eventId = await knex.transaction(async (trx) => {
    await trx('orders').insert({ sku: 'SKU-D', quantity: 1, customer: 'knex-delivery' });
    return publish(trx, 'example.delivery.knex', fixtureText);
  });
  const delivered = await waitForDelivery(knex, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  assert.equal(delivered.attempt, 1);
  const { rows: [cmp] } = await knex.raw('SELECT ?::jsonb = ?::jsonb AS same', [delivered.payload_text, fixtureText]);
  assert.equal(cmp.same, true);
});
