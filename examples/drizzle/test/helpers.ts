// Shared by the Drizzle tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

export function connect(url = process.env.DATABASE_URL) {
  if (!url) throw new Error('DATABASE_URL is not set: run examples/run.sh');
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  return { pool, db: drizzle(pool) };
}

export async function whereIs(db: NodePgDatabase, id: string) {
  const { rows } = await db.execute<{ place: string; status: string }>(sql`
    SELECT 'outbox' AS place, status::text FROM outbox_events WHERE id = ${id}
    UNION ALL SELECT 'archive', status::text FROM outbox_events_archive WHERE id = ${id}`);
  if (rows.length > 1) throw new Error(`event ${id} is in ${rows.length} places`);
  return rows[0] ?? null;
}

export type Claimed = { id: string; type: string; payload: any; payload_text: string; attempt: number; lease_token: string };

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(db: NodePgDatabase, type: string, expected = 1): Promise<Claimed[]> {
  const got: Claimed[] = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const { rows } = await db.execute<Claimed>(sql`
      SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
        FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'drizzle-test', types => ARRAY[${type}])`);
    for (const row of rows) {
      const { rows: [done] } = await db.execute<{ n: number }>(
        sql`SELECT outbox_complete(ARRAY[${row.id}]::uuid[], ${row.lease_token}) AS n`);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(db: NodePgDatabase) {
  const { rows } = await db.execute<{ yes: boolean }>(sql`SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes`);
  return rows[0].yes;
}

export async function waitForDelivery(db: NodePgDatabase, id: string, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await db.execute<{ payload_text: string }>(
      sql`SELECT payload::text AS payload_text FROM deliveries WHERE event_id = ${id}`);
    if (rows.length) return rows[0];
    await sleep(50);
  }
  return null;
}
