// Shared by the tenant tests: read each tenant's database directly (its own pool).
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');

/** Everything the database holds of one event: where it is, its delivery, and its database's name. */
export async function traceEvent(pool, id) {
  const { rows: [row] } = await pool.query(
    `SELECT current_database() AS database,
            (SELECT status::text FROM outbox_events WHERE id = $1) AS live,
            (SELECT status::text FROM outbox_events_archive WHERE id = $1) AS archived,
            (SELECT database::text FROM deliveries WHERE event_id = $1) AS delivered_in`, [id]);
  return row;
}

/** Wait until the event is archived with its delivery recorded (or time runs out); returns traceEvent. */
export async function waitForDelivery(pool, id, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let trace;
  do {
    trace = await traceEvent(pool, id);
    if (trace.delivered_in && trace.archived) return trace;
    await sleep(50);
  } while (Date.now() < deadline);
  return trace;
}

/** Per served database: the relay's pid and its count of SQL deliveries (outbox_worker_stats, pg_monitor). */
export async function relayStats(pool) {
  const { rows } = await pool.query('SELECT database::text, pid, delivered::int FROM outbox_worker_stats()');
  return Object.fromEntries(rows.map((r) => [r.database, { pid: r.pid, delivered: r.delivered }]));
}
