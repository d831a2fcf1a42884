// Publishing from Prisma 7 (adapter-pg) inside prisma.$transaction, through PgBouncer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { publish } from '../outbox.ts';
import { newPrismaClient, placeOrder } from '../place-order.ts';
import { claimAndComplete, fixtureText, hasSubscriptions, noSubscriptionsMessage, quick, waitForDelivery,
         whereIs } from './helpers.ts';

const prisma = newPrismaClient();
after(() => prisma.$disconnect());
const fixture = JSON.parse(fixtureText);

test('rollback (the callback throws): the order and the event do not exist', async () => {
  let eventId = '';
  let orderId = 0n;
  await assert.rejects(prisma.$transaction(async (tx) => {
    const order = await tx.order.create({ data: { sku: 'SKU-RB', quantity: 1, customer: 'prisma-rollback' } });
    orderId = order.id;
    eventId = await publish(tx, 'example.prisma.order.placed', { orderId: order.id.toString() });
    throw new Error('payment declined');
  }), /payment declined/);
  assert.ok(eventId);
  assert.equal(await whereIs(prisma, eventId), null);
  assert.equal(await prisma.order.findUnique({ where: { id: orderId } }), null);
});

test('commit: the order and its event are there (read with the Prisma models); claimed and completed (SQL API)', async () => {
  const { orderId, eventId } = await placeOrder(prisma, { sku: 'SKU-1', quantity: 2, customer: 'prisma-commit' },
                                                'example.prisma.order.placed');
  const event = await prisma.outboxEvent.findUniqueOrThrow({ where: { id: eventId } });
  assert.equal(event.status, 'created');
  assert.equal(event.orderingKey, 'customer:prisma-commit');
  assert.equal(typeof event.seq, 'bigint');
  assert.ok(event.occurredAt instanceof Date);
  assert.deepEqual(event.payload, { orderId: orderId.toString(), sku: 'SKU-1', quantity: 2, customer: 'prisma-commit' });
  const [got] = await claimAndComplete(prisma, 'example.prisma.order.placed');
  assert.equal(got.id, eventId);
  const archived = await prisma.outboxEventArchive.findFirstOrThrow({ where: { id: eventId } });
  assert.equal(archived.status, 'completed');
  assert.equal(archived.seq, event.seq);
});

test('payload round-trips: exact in jsonb (numbers beyond 2^53 included); Prisma\'s Json reader rounds them like JSON.parse', async () => {
  const eventId = await prisma.$transaction((tx) => publish(tx, 'example.prisma.payload', fixtureText));
  const [cmp] = await prisma.$queryRaw<{ same: boolean; beyond: string }[]>`
    SELECT payload = ${fixtureText}::jsonb AS same, payload->'numbers'->>'beyond_2_53' AS beyond
      FROM outbox_events WHERE id = ${eventId}::uuid`;
  assert.deepEqual(cmp, { same: true, beyond: '9007199254740993' });
  const event = await prisma.outboxEvent.findUniqueOrThrow({ where: { id: eventId }, select: { payload: true } });
  const payload = event.payload as any;
  assert.deepEqual(payload, fixture);
  assert.equal(payload.customer.combining, 'e\u0301 a\u030a n\u0303');
  assert.equal(payload.customer.astral, '𝄞 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀');
  assert.equal(payload.numbers.beyond_2_53, 9007199254740992);
  const [got] = await claimAndComplete(prisma, 'example.prisma.payload');
  assert.match(got.payload_text, /"beyond_2_53": 9007199254740993/);
  assert.deepEqual(got.payload, fixture); // $queryRaw's jsonb: the same JSON.parse view
});

test('concurrent interactive transactions through PgBouncer: every commit carries its event', async () => {
  const n = quick ? 20 : 200;
  const results = await Promise.all(Array.from({ length: n }, (_, i) =>
    placeOrder(prisma, { sku: `SKU-C${i}`, quantity: 1, customer: `prisma-${i % 4}` }, 'example.prisma.concurrent')));
  const got = await claimAndComplete(prisma, 'example.prisma.concurrent', n);
  assert.deepEqual(new Set(got.map((r) => r.id)), new Set(results.map((r) => r.eventId)));
});

test('worker delivery: a committed event reaches a SQL subscription handler, payload intact', async (t) => {
  if (!(await hasSubscriptions(prisma))) return t.skip(noSubscriptionsMessage);
  const eventId = await prisma.$transaction(async (tx) => {
    await tx.order.create({ data: { sku: 'SKU-D', quantity: 1, customer: 'prisma-delivery' } });
    return publish(tx, 'example.delivery.prisma', fixtureText);
  });
  const delivered = await waitForDelivery(prisma, eventId);
  assert.ok(delivered, 'the handler recorded the event');
  const [cmp] = await prisma.$queryRaw<{ same: boolean }[]>`
    SELECT ${delivered!.payload_text}::jsonb = ${fixtureText}::jsonb AS same`;
  assert.equal(cmp.same, true);
});
