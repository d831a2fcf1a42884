// Publishing outbox events with Drizzle: the few lines to copy.
//
// Call publish() with the `tx` of db.transaction(): the event commits or rolls
// back with the rows written through that same tx. Called with `db`, it runs
// on its own connection outside your transaction (outbox.require_transaction
// warns, or refuses when set to error).
import { sql } from 'drizzle-orm';
import type { NodePgDatabase, NodePgQueryResultHKT } from 'drizzle-orm/node-postgres';
import type { PgTransaction } from 'drizzle-orm/pg-core';

export type Executor = NodePgDatabase<any> | PgTransaction<NodePgQueryResultHKT, any, any>;

export interface PublishOptions {
  orderingKey?: string | null;
  headers?: Record<string, unknown> | null;
  deliverAt?: Date | null;
  delay?: string | null; // an interval: '5 minutes'
  id?: string | null;
}

/** payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond 2^53 exact). */
export async function publish(tx: Executor, type: string, payload: unknown, options: PublishOptions = {}): Promise<string> {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  const result = await tx.execute<{ id: string }>(sql`
    SELECT outbox_publish(${type}, ${toJsonText(payload)}::jsonb,
                          ordering_key => ${orderingKey}, headers => ${headers === null ? null : toJsonText(headers)}::jsonb,
                          deliver_at => ${deliverAt?.toISOString() ?? null}::timestamptz, delay => ${delay}::interval,
                          id => ${id}::uuid) AS id`);
  return result.rows[0].id;
}

function toJsonText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
