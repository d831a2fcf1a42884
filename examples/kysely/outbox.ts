// Publishing outbox events with Kysely: the few lines to copy.
//
// Inside db.transaction().execute(async (trx) => ...) (or a controlled
// transaction, db.startTransaction()), call publish(trx, ...): the query runs
// on the transaction's connection, so the event commits or rolls back with the
// rows written through trx. Called with `db` instead of `trx`, it runs on
// another pooled connection outside your transaction (outbox.require_transaction
// warns, or refuses when set to error).
import { sql, type Kysely } from 'kysely';

export interface PublishOptions {
  orderingKey?: string | null;
  headers?: Record<string, unknown> | null;
  deliverAt?: Date | null;
  delay?: string | null; // an interval: '5 minutes'
  id?: string | null;
}

/** payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond 2^53 exact). */
export async function publish(trx: Kysely<any>, type: string, payload: unknown, options: PublishOptions = {}): Promise<string> {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  const { rows } = await sql<{ id: string }>`
    SELECT outbox_publish(${type}, ${toJsonText(payload)}::jsonb,
                          ordering_key => ${orderingKey}, headers => ${headers === null ? null : toJsonText(headers)}::jsonb,
                          deliver_at => ${deliverAt}::timestamptz, delay => ${delay}::interval,
                          id => ${id}::uuid) AS id`.execute(trx);
  return rows[0].id;
}

function toJsonText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
