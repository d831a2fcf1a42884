// Shared by the Prisma tests.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrismaClient } from '../generated/prisma/client.ts';

export const quick = process.env.OUTBOX_EXAMPLES_QUICK === '1';
export const fixtureText = readFileSync(new URL('../../payload.json', import.meta.url), 'utf8');
export const noSubscriptionsMessage =
  'the installed extension has no subscription API (outbox_subscribe): worker delivery is checked once the relay is built';

export async function whereIs(prisma: PrismaClient, id: string) {
  const [live, archived] = await Promise.all([
    prisma.outboxEvent.findUnique({ where: { id }, select: { status: true } }),
    prisma.outboxEventArchive.findMany({ where: { id }, select: { status: true } }),
  ]);
  if ((live ? 1 : 0) + archived.length > 1) throw new Error(`event ${id} is in several places`);
  if (live) return { place: 'outbox', status: live.status };
  if (archived.length) return { place: 'archive', status: archived[0].status };
  return null;
}

export type Claimed = { id: string; type: string; payload: any; payload_text: string; attempt: number; lease_token: bigint };

/** Claim the events of one type through the SQL API and complete them. */
export async function claimAndComplete(prisma: PrismaClient, type: string, expected = 1): Promise<Claimed[]> {
  const got: Claimed[] = [];
  for (let i = 0; i < 50 && got.length < expected; i++) {
    const rows = await prisma.$queryRaw<Claimed[]>`
      SELECT id::text, type, payload, payload::text AS payload_text, attempt, lease_token
        FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'prisma-test', types => ARRAY[${type}::text])`;
    for (const row of rows) {
      const [done] = await prisma.$queryRaw<{ n: number }[]>`
        SELECT outbox_complete(ARRAY[${row.id}::uuid], ${row.lease_token}::bigint) AS n`;
      if (done.n !== 1) throw new Error(`completed ${done.n} events, not 1`);
      got.push(row);
    }
    if (got.length < expected) await sleep(50);
  }
  return got;
}

export async function hasSubscriptions(prisma: PrismaClient) {
  const [row] = await prisma.$queryRaw<{ yes: boolean }[]>`SELECT to_regproc('outbox_subscribe') IS NOT NULL AS yes`;
  return row.yes;
}

export async function waitForDelivery(prisma: PrismaClient, id: string, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const rows = await prisma.$queryRaw<{ payload_text: string }[]>`
      SELECT payload::text AS payload_text FROM deliveries WHERE event_id = ${id}::uuid`;
    if (rows.length) return rows[0];
    await sleep(50);
  }
  return null;
}
