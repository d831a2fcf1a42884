// Shared by the TypeORM tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSource } from 'typeorm';
import { Delivery, OutboxEvent, OutboxEventArchive } from '../entities.ts';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

/** Where the event is: 'outbox' (with its status), 'archive' (completed/failed), or null. Read with the entities. */
export async function whereIs(ds: DataSource, id: string) {
  const [live, archived] = await Promise.all([
    ds.manager.findOne(OutboxEvent, { where: { id }, select: { id: true, status: true } }),
    ds.manager.find(OutboxEventArchive, { where: { id }, select: { id: true, status: true } }),
  ]);
  if ((live ? 1 : 0) + archived.length > 1) throw new Error(`event ${id} is in several places`);
  if (live) return { place: 'outbox', status: live.status };
  if (archived.length) return { place: 'archive', status: archived[0].status };
  return null;
}

export type Claimed = { id: string; type: string; payload: any; payload_text: string; attempt: number; lease_token: string };

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(ds: DataSource, type: string, expected = 1): Promise<Claimed[]> {
  const got: Claimed[] = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const rows: Claimed[] = await ds.query(
      `SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
         FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'typeorm-test', types => ARRAY[$1])`,
      [type]);
    for (const row of rows) {
      const [done]: { n: number }[] = await ds.query('SELECT outbox_complete(ARRAY[$1]::uuid[], $2) AS n',
                                                     [row.id, row.lease_token]);
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(ds: DataSource) {
  const [row]: { yes: boolean }[] = await ds.query("SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes");
  return row.yes;
}

export async function waitForDelivery(ds: DataSource, id: string, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await ds.manager.findOneBy(Delivery, { eventId: id });
    if (row) {
      const [{ text }]: { text: string }[] = await ds.query('SELECT payload::text AS text FROM deliveries WHERE event_id = $1', [id]);
      return { attempt: row.attempt, payload: row.payload, payloadText: text };
    }
    await sleep(50);
  }
  return null;
}
