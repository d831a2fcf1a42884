// The consumer example (consumer.js): claim, heartbeat, complete, fail, and a
// clean shutdown on SIGTERM, all through PgBouncer in transaction pooling.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { OutboxConsumer, PermanentError } from '../consumer.js';
import { publish, withTransaction } from '../outbox.js';
import { newPool, quick } from './helpers.js';

const pool = newPool();
after(() => pool.end());

async function publishMany(type, payloads) {
  return withTransaction(pool, async (client) => {
    const ids = [];
    for (const p of payloads) ids.push(await publish(client, type, p));
    return ids;
  });
}

async function archived(ids) {
  const { rows } = await pool.query(
    `SELECT id, status::text, retry_count, last_error FROM outbox_events_archive WHERE id = ANY($1::uuid[])`, [ids]);
  return new Map(rows.map((r) => [r.id, r]));
}

async function until(cond, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(50);
  }
  return false;
}

test('consumer: completes events, retries a failed attempt with backoff, marks a poison event failed', async () => {
  const n = quick ? 8 : 100;
  const okIds = await publishMany('example.consumer.ok', Array.from({ length: n }, (_, i) => ({ i })));
  const [flakyId] = await publishMany('example.consumer.flaky', [{ fail: 'once' }]);
  const [poisonId] = await publishMany('example.consumer.poison', [{ fail: 'always' }]);
  const calls = new Map();
  const consumer = new OutboxConsumer(pool, {
    types: ['example.consumer.*'], batchSize: 5, leaseSeconds: 10, retryIn: '100 milliseconds',
    handler: async (event) => {
      calls.set(event.id, (calls.get(event.id) ?? 0) + 1);
      if (event.payload.fail === 'once' && event.attempt === 1) throw new Error('downstream timeout');
      if (event.payload.fail === 'always') throw new PermanentError('malformed event');
    },
  });
  const running = consumer.run();
  const done = await until(async () => {
    const a = await archived([...okIds, flakyId]);
    return a.size === n + 1;
  });
  consumer.stop();
  await running;
  assert.ok(done, 'every good event reached the archive');
  const a = await archived([...okIds, flakyId]);
  for (const id of okIds) {
    assert.equal(a.get(id).status, 'completed');
    assert.equal(calls.get(id), 1, 'each good event handled once');
  }
  assert.equal(a.get(flakyId).retry_count, 1);
  assert.equal(a.get(flakyId).last_error, 'downstream timeout');
  assert.equal(calls.get(flakyId), 2);
  const { rows: [poison] } = await pool.query(
    'SELECT status::text, last_error, lease_owner FROM outbox_events WHERE id = $1', [poisonId]);
  assert.equal(poison.status, 'failed');
  assert.equal(poison.last_error, 'malformed event');
  assert.equal(calls.get(poisonId), 1, 'a non-retryable failure is not retried');
  assert.equal(consumer.held.size, 0);
  assert.deepEqual(consumer.ledger.lost, []);
});

test('heartbeat: a handler slower than the lease keeps its event; no other consumer gets it', async () => {
  const [slowId] = await publishMany('example.consumer.slow', [{ work: 'slow' }]);
  const consumer = new OutboxConsumer(pool, {
    types: ['example.consumer.slow'], batchSize: 1, leaseSeconds: 1, heartbeatMs: 250,
    handler: () => sleep(2500), // 2.5 leases
  });
  const running = consumer.run();
  await until(async () => consumer.ledger.claimed.includes(slowId), 5000);
  // Another consumer keeps trying while the first one works.
  let stolen = 0;
  const deadline = Date.now() + 2600;
  while (Date.now() < deadline && !consumer.ledger.completed.includes(slowId)) {
    const { rows } = await pool.query(
      "SELECT id FROM outbox_claim(10, '1 second', 'thief', ARRAY['example.consumer.slow'])");
    stolen += rows.length;
    await sleep(100);
  }
  await until(async () => consumer.ledger.completed.includes(slowId), 5000);
  consumer.stop();
  await running;
  assert.equal(stolen, 0, 'the lease, kept alive by heartbeats, was never reclaimed');
  const a = await archived([slowId]);
  assert.equal(a.get(slowId).status, 'completed');
  assert.equal(a.get(slowId).retry_count, 0);
});

test('SIGTERM: the consumer finishes the event in hand, releases the rest, nothing completed or released twice', async () => {
  const n = quick ? 12 : 60;
  const ids = await publishMany('example.consumer.shutdown', Array.from({ length: n }, (_, i) => ({ i })));
  const runConsumer = (env) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../consumer.js', import.meta.url)),
                                           'example.consumer.shutdown'],
                        { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => {
      stderr += d;
      // Stop it once it has handled a few events, in the middle of a batch.
      if (env.STOP_AFTER && (stderr.match(/^handled /gm) ?? []).length === Number(env.STOP_AFTER)) child.kill('SIGTERM');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr, ledger: JSON.parse(stdout.trim().split('\n').pop()) }));
  });

  const first = await runConsumer({ HANDLER_MS: '100', BATCH_SIZE: '5', STOP_AFTER: '3' });
  assert.equal(first.code, 0, first.stderr);
  const { completed, released, failed, retried, lost, claimed } = first.ledger;
  assert.ok(completed.length >= 3, `completed ${completed.length}`);
  assert.ok(released.length >= 1, 'something claimed was given back');
  assert.deepEqual([failed, retried, lost], [[], [], []]);
  const outcomes = [...completed, ...released];
  assert.equal(new Set(outcomes).size, outcomes.length, 'no event completed or released twice');
  assert.deepEqual(new Set(outcomes), new Set(claimed), 'every claimed event was completed or released');
  // In the database: completed ones archived; released ones waiting again, no attempt counted, no lease.
  const a = await archived(ids);
  for (const id of completed) assert.equal(a.get(id)?.status, 'completed');
  const { rows: back } = await pool.query(
    `SELECT id, status::text, retry_count, lease_owner FROM outbox_events WHERE id = ANY($1::uuid[])`, [released]);
  assert.equal(back.length, released.length);
  for (const r of back) assert.deepEqual([r.status, r.retry_count, r.lease_owner], ['created', 0, null]);
  const { rows: [active] } = await pool.query(
    "SELECT count(*)::int AS n FROM outbox_events WHERE id = ANY($1::uuid[]) AND status = 'active'", [ids]);
  assert.equal(active.n, 0, 'nothing left holding a lease');

  // A second consumer picks up where the first stopped; each event ends up archived exactly once.
  const second = await runConsumer({ HANDLER_MS: '0', BATCH_SIZE: '50', STOP_AFTER: String(n - completed.length) });
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.ledger.completed.length, n - completed.length);
  const { rows: [counts] } = await pool.query(
    'SELECT count(*)::int AS rows, count(DISTINCT id)::int AS ids FROM outbox_events_archive WHERE id = ANY($1::uuid[])', [ids]);
  assert.deepEqual(counts, { rows: n, ids: n });
});
