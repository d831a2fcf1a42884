// Shared by the node-postgres tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');

export function newPool(url = process.env.DATABASE_URL, max = 4) {
  if (!url) throw new Error('DATABASE_URL is not set: run examples/run.sh');
  return new pg.Pool({ connectionString: url, max });
}

/** Where the event is: 'outbox' (with its status), 'archive' (completed/failed), or null. */
export async function whereIs(pool, id) {
  const { rows } = await pool.query(
    `SELECT 'outbox' AS place, status::text FROM outbox_events WHERE id = $1
     UNION ALL SELECT 'archive', status::text FROM outbox_events_archive WHERE id = $1`, [id]);
  if (rows.length > 1) throw new Error(`event ${id} is in ${rows.length} places`);
  return rows[0] ?? null;
}

/** Claim the events of one type through the SQL API (the way any consumer does) and complete them. */
export async function claimAndComplete(pool, type, expected = 1) {
  const got = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const { rows } = await pool.query(
      `SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
         FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'node-test', types => ARRAY[$1])`,
      [type]);
    for (const row of rows) {
      const { rows: [done] } = await pool.query('SELECT outbox_complete(ARRAY[$1]::uuid[], $2) AS n',
                                                [row.id, row.lease_token]);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

/** The worker's subscription API, when this build has it. */
export async function hasSubscriptions(pool) {
  const { rows } = await pool.query("SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes");
  return rows[0].yes;
}

/** Wait for the relay to run the subscription handler (record_delivery) on an event. */
export async function waitForDelivery(pool, id, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await pool.query('SELECT payload, payload::text AS payload_text, attempt FROM deliveries WHERE event_id = $1', [id]);
    if (rows.length) return rows[0];
    await sleep(50);
  }
  return null;
}

export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';
