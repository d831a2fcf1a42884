// Shared by the Knex tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

/** Where the event is: 'outbox' (with its status), 'archive' (completed/failed), or null. */
export async function whereIs(knex, id) {
  const { rows } = await knex.raw(
    `SELECT 'outbox' AS place, status::text FROM outbox_events WHERE id = ?
     UNION ALL SELECT 'archive', status::text FROM outbox_events_archive WHERE id = ?`, [id, id]);
  if (rows.length > 1) throw new Error(`event ${id} is in ${rows.length} places`);
  return rows[0] ?? null;
}

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(knex, type, expected = 1) {
  const got = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const { rows } = await knex.raw(
      `SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
         FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'knex-test', types => ARRAY[?])`,
      [type]);
    for (const row of rows) {
      const { rows: [done] } = await knex.raw('SELECT outbox_complete(ARRAY[?]::uuid[], ?) AS n',
                                              [row.id, row.lease_token]);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(knex) {
  const { rows } = await knex.raw("SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes");
  return rows[0].yes;
}

/** Wait for the relay to run the subscription handler (record_delivery) on an event. */
export async function waitForDelivery(knex, id, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await knex('deliveries').where({ event_id: id })
      .first(knex.raw('payload::text AS payload_text'), 'attempt');
    if (row) return row;
    await sleep(50);
  }
  return null;
}
