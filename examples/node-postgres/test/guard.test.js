// The seed 003 mistake: the business write runs in a transaction on one
// connection, the publish on a second pool that is not in that transaction.
// outbox.require_transaction catches it: a WARNING by default, an ERROR when set
// for the role (ALTER ROLE ... SET: applied by the server, no session SET).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { publish } from '../outbox.js';
import { newPool, whereIs, claimAndComplete } from './helpers.js';

const NO_ACTIVE_SQL_TRANSACTION = '25P01';

function poolWithNotices(url) {
  const pool = newPool(url, 2);
  pool.notices = [];
  pool.on('connect', (client) => client.on('notice', (n) => pool.notices.push(n)));
  return pool;
}

const appPool = poolWithNotices(process.env.DATABASE_URL);      // "Prisma's" pool: the transaction
const secondPool = poolWithNotices(process.env.DATABASE_URL);   // "Drizzle's" pool: the mistake
const strictPool = poolWithNotices(process.env.DATABASE_URL_STRICT);
after(() => Promise.all([appPool.end(), secondPool.end(), strictPool.end()]));

test('seed 003 mistake, default guard: the WARNING reaches the client, and the event outlives the rollback', async () => {
  const tx = await appPool.connect();
  let eventId;
  try {
    await tx.query('BEGIN');
    await tx.query("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-G', 1, 'node-guard')");
    eventId = await publish(secondPool, 'example.np.guard', { customer: 'node-guard' }); // wrong connection
    await tx.query('ROLLBACK');
  } finally {
    tx.release();
  }
  const warning = secondPool.notices.find((n) => n.code === NO_ACTIVE_SQL_TRANSACTION);
  assert.ok(warning, 'a notice with SQLSTATE 25P01 reached the client');
  assert.equal(warning.severity, 'WARNING');
  assert.equal(warning.message, 'outbox_publish called outside a transaction block');
  assert.match(warning.hint, /same transaction \(and connection\)/);
  // This is the bug the warning is about: the order rolled back, the event did not.
  assert.deepEqual(await whereIs(appPool, eventId), { place: 'outbox', status: 'created' });
  const { rowCount } = await appPool.query("SELECT 1 FROM orders WHERE customer = 'node-guard'");
  assert.equal(rowCount, 0);
  await claimAndComplete(appPool, 'example.np.guard'); // tidy up the stray event
});

test('seed 003 mistake, outbox.require_transaction = error for the role: an ERROR, nothing published', async () => {
  const tx = await strictPool.connect();
  try {
    await tx.query('BEGIN');
    await tx.query("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-G', 1, 'node-guard-strict')");
    const secondStrict = newPool(process.env.DATABASE_URL_STRICT, 1);
    try {
      await assert.rejects(publish(secondStrict, 'example.np.guard.strict', { customer: 'node-guard-strict' }),
        (err) => err.code === NO_ACTIVE_SQL_TRANSACTION &&
                 err.message === 'outbox_publish called outside a transaction block' &&
                 /same transaction/.test(err.hint));
    } finally {
      await secondStrict.end();
    }
    await tx.query('ROLLBACK');
  } finally {
    tx.release();
  }
  const { rows } = await appPool.query("SELECT count(*)::int AS n FROM outbox_events WHERE type = 'example.np.guard.strict'");
  assert.equal(rows[0].n, 0);
});

test('the right way, even with the strict setting: same client, inside the transaction, no warning', async () => {
  strictPool.notices.length = 0;
  const tx = await strictPool.connect();
  let eventId;
  try {
    await tx.query('BEGIN');
    await tx.query("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-G', 1, 'node-guard-right')");
    eventId = await publish(tx, 'example.np.guard.right', { customer: 'node-guard-right' });
    await tx.query('COMMIT');
  } finally {
    tx.release();
  }
  assert.deepEqual(strictPool.notices, []);
  const [got] = await claimAndComplete(appPool, 'example.np.guard.right');
  assert.equal(got.id, eventId);
});
