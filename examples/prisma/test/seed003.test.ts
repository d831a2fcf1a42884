// Seed 003: "Drizzle writes inside a Prisma transaction". Drizzle has its own
// pool, so its write is not in Prisma's transaction: if Prisma rolls back, the
// Drizzle write persists. With outbox_publish that write is the event, and
// outbox.require_transaction catches it: a WARNING by default (the event still
// escapes), an ERROR with outbox.require_transaction = error (set for the role
// with ALTER ROLE: no session SET, so it holds through PgBouncer).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { publish } from '../outbox.ts';
import { newPrismaClient } from '../place-order.ts';
import { claimAndComplete, whereIs } from './helpers.ts';

function drizzleWithNotices(url: string | undefined) {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const notices: Array<{ code?: string; severity?: string; message?: string }> = [];
  pool.on('connect', (client) => { client.on('notice', (n) => notices.push(n)); });
  return { pool, db: drizzle(pool), notices };
}

const prisma = newPrismaClient();
const prismaStrict = newPrismaClient(process.env.DATABASE_URL_STRICT);
const d = drizzleWithNotices(process.env.DATABASE_URL);
const dStrict = drizzleWithNotices(process.env.DATABASE_URL_STRICT);
after(async () => {
  await Promise.all([prisma.$disconnect(), prismaStrict.$disconnect(), d.pool.end(), dStrict.pool.end()]);
});

async function drizzlePublish(db: ReturnType<typeof drizzle>, type: string, payload: unknown) {
  const { rows } = await db.execute<{ id: string }>(sql`SELECT outbox_publish(${type}, ${JSON.stringify(payload)}::jsonb) AS id`);
  return rows[0].id;
}

test('seed 003 mistake (Drizzle publishes inside a Prisma transaction): WARNING reaches Drizzle\'s client; the event escapes the rollback', async () => {
  let eventId = '';
  await assert.rejects(prisma.$transaction(async (tx) => {
    await tx.order.create({ data: { sku: 'SKU-S3', quantity: 1, customer: 'seed003' } });
    eventId = await drizzlePublish(d.db, 'example.prisma.seed003', { customer: 'seed003' }); // the mistake
    throw new Error('roll back');
  }), /roll back/);
  const warning = d.notices.find((n) => n.code === '25P01');
  assert.ok(warning, 'a 25P01 notice reached the Drizzle pool');
  assert.equal(warning.severity, 'WARNING');
  assert.equal(warning.message, 'outbox_publish called outside a transaction block');
  // The bug the warning names: the order is gone, the event is not.
  assert.equal(await prisma.order.count({ where: { customer: 'seed003' } }), 0);
  assert.deepEqual(await whereIs(prisma, eventId), { place: 'outbox', status: 'created' });
  await claimAndComplete(prisma, 'example.prisma.seed003'); // tidy up
});

test('seed 003 mistake with outbox.require_transaction = error: the ERROR aborts the Prisma transaction; nothing escapes', async () => {
  await assert.rejects(prismaStrict.$transaction(async (tx) => {
    await tx.order.create({ data: { sku: 'SKU-S3', quantity: 1, customer: 'seed003-strict' } });
    await drizzlePublish(dStrict.db, 'example.prisma.seed003.strict', { customer: 'seed003-strict' });
  }), (err: any) => (err.cause?.code ?? err.code) === '25P01' || /outside a transaction block/.test(String(err.cause?.message ?? err.message)));
  assert.equal(await prisma.order.count({ where: { customer: 'seed003-strict' } }), 0);
  assert.equal(await prisma.outboxEvent.count({ where: { type: 'example.prisma.seed003.strict' } }), 0);
});

test('the fix: publish with Prisma\'s tx, inside its transaction; commit and rollback both hold with the strict setting', async () => {
  const committed = await prismaStrict.$transaction(async (tx) => {
    await tx.order.create({ data: { sku: 'SKU-S3', quantity: 1, customer: 'seed003-fixed' } });
    return publish(tx, 'example.prisma.seed003.fixed', { customer: 'seed003-fixed' });
  });
  let rolledBack = '';
  await assert.rejects(prismaStrict.$transaction(async (tx) => {
    rolledBack = await publish(tx, 'example.prisma.seed003.fixed', { customer: 'seed003-fixed' });
    throw new Error('roll back');
  }));
  assert.equal(await whereIs(prisma, rolledBack), null);
  const got = await claimAndComplete(prisma, 'example.prisma.seed003.fixed');
  assert.deepEqual(got.map((r) => r.id), [committed]);
});
