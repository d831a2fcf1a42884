// Publishing outbox events with Prisma 7: the few lines to copy.
//
// Inside prisma.$transaction(async (tx) => ...), call publish(tx, ...): the
// raw query runs on the transaction's connection, so the event commits or
// rolls back with the rows written through tx. Called with `prisma` instead
// of `tx`, it runs outside your transaction (outbox.require_transaction warns,
// or refuses when set to error).
import type { Prisma } from './generated/prisma/client.ts';

export interface PublishOptions {
  orderingKey?: string | null;
  headers?: Record<string, unknown> | null;
  deliverAt?: Date | null;
  delay?: string | null; // an interval: '5 minutes'
  id?: string | null;
}

/** payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond 2^53 exact). */
export async function publish(tx: Prisma.TransactionClient, type: string, payload: unknown,
                              options: PublishOptions = {}): Promise<string> {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  const rows = await tx.$queryRaw<{ id: string }[]>`
    SELECT outbox_publish(${type}, ${toJsonText(payload)}::jsonb,
                          ordering_key => ${orderingKey}::text,
                          headers => ${headers === null ? null : toJsonText(headers)}::jsonb,
                          deliver_at => ${deliverAt}::timestamptz, delay => ${delay}::interval,
                          id => ${id}::uuid)::text AS id`;
  return rows[0].id;
}

function toJsonText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
