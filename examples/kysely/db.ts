// The database as Kysely sees it: the business table, and the outbox tables
// for reading (write them only through the extension's functions).
import { Kysely, PostgresDialect, type ColumnType, type Generated } from 'kysely';
import pg from 'pg';

export interface OrdersTable {
  id: Generated<string>; // bigint: pg returns it as a string
  sku: string;
  quantity: number;
  customer: string;
  created_at: ColumnType<Date, never, never>;
}

type OutboxStatus = 'created' | 'active' | 'completed' | 'failed';
type ReadOnly<T> = ColumnType<T, never, never>;

export interface OutboxEventsTable {
  id: ReadOnly<string>;
  seq: ReadOnly<string>; // bigint
  type: ReadOnly<string>;
  payload: ReadOnly<unknown>;
  headers: ReadOnly<unknown>;
  ordering_key: ReadOnly<string | null>;
  status: ReadOnly<OutboxStatus>;
  occurred_at: ReadOnly<Date>;
  available_at: ReadOnly<Date>;
  retry_count: ReadOnly<number>;
  dispatched_at: ReadOnly<Date | null>;
}

export interface OutboxEventsArchiveTable {
  id: ReadOnly<string>;
  seq: ReadOnly<string>;
  type: ReadOnly<string>;
  payload: ReadOnly<unknown>;
  status: ReadOnly<OutboxStatus>;
  completed_on: ReadOnly<Date>;
}

export interface DeliveriesTable {
  event_id: ReadOnly<string>;
  type: ReadOnly<string>;
  payload: ReadOnly<unknown>;
  attempt: ReadOnly<number>;
}

export interface Database {
  orders: OrdersTable;
  outbox_events: OutboxEventsTable;
  outbox_events_archive: OutboxEventsArchiveTable;
  deliveries: DeliveriesTable;
}

export function newKysely(connectionString = process.env.DATABASE_URL) {
  // Through PgBouncer in transaction pooling: pg sends unnamed prepared
  // statements; Kysely keeps no session state.
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString, max: 4 }) }) });
}
