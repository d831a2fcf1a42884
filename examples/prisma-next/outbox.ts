// Publishing outbox events with Prisma Next: the few lines to copy.
//
// Inside db.transaction(async (tx) => ...): write the business row with tx.orm,
// then publish with tx.sql and tx.execute. Everything on tx runs on the
// transaction's one connection, so the event commits or rolls back with the
// row. (db.orm / db.sql / db.runtime() run outside your transaction.)
//
// Prisma Next 0.16 has no raw full-statement query: raw SQL is a fragment
// (fns.raw) inside the typed builder. So the publish is a SELECT of
// outbox_publish(...) from the business row just written:
//   SELECT outbox_publish($1, $2::jsonb, ordering_key => $3)::text FROM orders WHERE id = $4
// which also means: no order row visible in this transaction, no event.
// Values go in with param(value, { codecId }): in 0.16 a bare string
// interpolated into fns.raw gets the codec id "pg/text", which lowering
// rejects (it knows "pg/text@1").
import { param } from '@prisma-next/sql-relational-core/expression';
import type { Tx } from './db.ts';

const text = (value: string | null) => param(value, { codecId: 'pg/text@1' });

export interface PublishOptions {
  orderingKey?: string | null;
}

/**
 * Publish an event for the order `orderId` written in this transaction; returns the event's id.
 * payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond 2^53 exact).
 */
export async function publishForOrder(tx: Tx, orderId: number, type: string, payload: unknown,
                                      options: PublishOptions = {}): Promise<string> {
  const json = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const plan = tx.sql.public.orders
    .select('eventId', (_f, fns) =>
      fns.raw`outbox_publish(${text(type)}, ${text(json)}::jsonb, ordering_key => ${text(options.orderingKey ?? null)})::text`
        .returns('pg/text@1'))
    .where((f, fns) => fns.eq(f.id, orderId))
    .build();
  const rows = await tx.execute(plan);
  if (rows.length !== 1) throw new Error(`order ${orderId} is not visible in this transaction: nothing published`);
  return rows[0].eventId;
}
