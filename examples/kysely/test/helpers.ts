// Shared by the Kysely tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db.ts';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

/** Where the event is: 'outbox' (with its status), 'archive' (completed/failed), or null. Read with the typed tables. */
export async function whereIs(db: Kysely<Database>, id: string) {
  const rows = await db.selectFrom('outbox_events').select([sql.lit('outbox').as('place'), 'status']).where('id', '=', id)
    .unionAll(db.selectFrom('outbox_events_archive').select([sql.lit('archive').as('place'), 'status']).where('id', '=', id))
    .execute();
  if (rows.length > 1) throw new Error(`event ${id} is in ${rows.length} places`);
  return rows[0] ? { place: rows[0].place as string, status: rows[0].status as string } : null;
}

export type Claimed = { id: string; type: string; payload: any; payload_text: string; attempt: number; lease_token: string };

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(db: Kysely<Database>, type: string, expected = 1): Promise<Claimed[]> {
  const got: Claimed[] = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const { rows } = await sql<Claimed>`
      SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
        FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'kysely-test', types => ARRAY[${type}])`
      .execute(db);
    for (const row of rows) {
      const { rows: [done] } = await sql<{ n: number }>`
        SELECT outbox_complete(ARRAY[${row.id}]::uuid[], ${row.lease_token}) AS n`.execute(db);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(db: Kysely<Database>) {
  const { rows } = await sql<{ yes: boolean }>`SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes`.execute(db);
  return rows[0].yes;
}

export async function waitForDelivery(db: Kysely<Database>, id: string, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await db.selectFrom('deliveries').select([sql<string>`payload::text`.as('payload_text'), 'attempt'])
      .where('event_id', '=', id).executeTakeFirst();
    if (row) return row;
    await sleep(50);
  }
  return null;
}
