// Publishing outbox events with TypeORM: the few lines to copy.
//
// Inside dataSource.transaction(async (manager) => ...), call publish(manager,
// ...): the transaction's EntityManager runs every query on its one
// connection, so the event commits or rolls back with the entities saved
// through that manager. Called with dataSource.manager (or a repository of
// the data source) instead, it runs on another pooled connection outside your
// transaction (outbox.require_transaction warns, or refuses when set to error).
import type { EntityManager, QueryRunner } from 'typeorm';

export interface PublishOptions {
  orderingKey?: string | null;
  headers?: Record<string, unknown> | null;
  deliverAt?: Date | null;
  delay?: string | null; // an interval: '5 minutes'
  id?: string | null;
}

/** payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond 2^53 exact). */
export async function publish(tx: EntityManager | QueryRunner, type: string, payload: unknown,
                              options: PublishOptions = {}): Promise<string> {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  const rows: { id: string }[] = await tx.query(
    `SELECT outbox_publish($1, $2::jsonb, ordering_key => $3, headers => $4::jsonb,
                           deliver_at => $5::timestamptz, delay => $6::interval, id => $7::uuid) AS id`,
    [type, toJsonText(payload), orderingKey, headers === null ? null : toJsonText(headers), deliverAt, delay, id]);
  return rows[0].id;
}

function toJsonText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
