// Shared by the Prisma Next tests. The consumer side (claim, complete) and the
// archive are read through plain pg (the SQL API, as any consumer): Prisma
// Next 0.16 has no raw full-statement query to call outbox_claim() with.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

export function newPool(url = process.env.DATABASE_URL) {
  if (!url) throw new Error('DATABASE_URL is not set: run examples/run.sh');
  return new pg.Pool({ connectionString: url, max: 2 });
}

export async function whereIs(pool: pg.Pool, id: string) {
  const { rows } = await pool.query<{ place: string; status: string }>(
    `SELECT 'outbox' AS place, status::text FROM outbox_events WHERE id = $1
     UNION ALL SELECT 'archive', status::text FROM outbox_events_archive WHERE id = $1`, [id]);
  if (rows.length > 1) throw new Error(`event ${id} is in ${rows.length} places`);
  return rows[0] ?? null;
}

export type Claimed = { id: string; type: string; payload: any; payload_text: string; attempt: number; lease_token: string };

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(pool: pg.Pool, type: string, expected = 1): Promise<Claimed[]> {
  const got: Claimed[] = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const { rows } = await pool.query<Claimed>(
      `SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
         FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'prisma-next-test', types => ARRAY[$1])`,
      [type]);
    for (const row of rows) {
      const { rows: [done] } = await pool.query<{ n: number }>('SELECT outbox_complete(ARRAY[$1]::uuid[], $2) AS n',
                                                              [row.id, row.lease_token]);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(pool: pg.Pool) {
  const { rows } = await pool.query<{ yes: boolean }>("SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes");
  return rows[0].yes;
}

export async function waitForDelivery(pool: pg.Pool, id: string, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ payload_text: string; attempt: number }>(
      'SELECT payload::text AS payload_text, attempt FROM deliveries WHERE event_id = $1', [id]);
    if (rows.length) return rows[0];
    await sleep(50);
  }
  return null;
}
