// Drizzle schema of the tables CREATE EXTENSION outbox makes, for reading them
// with Drizzle's query builder (and your business table beside them).
//
// The outbox tables belong to the extension: write them only through its SQL
// functions (outbox_publish, outbox_claim, ...), and keep drizzle-kit from
// managing them (drizzle.config.ts: tablesFilter: ['!outbox_*']).
import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const outboxStatus = pgEnum('outbox_status', ['created', 'active', 'completed', 'failed']);

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const outboxEvents = pgTable('outbox_events', {
  id: uuid('id').primaryKey(),
  seq: bigint('seq', { mode: 'bigint' }).notNull().generatedAlwaysAsIdentity(),
  type: text('type').notNull(),
  payload: jsonb('payload').notNull(),
  headers: jsonb('headers').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  orderingKey: text('ordering_key'),
  status: outboxStatus('status').notNull().default('created'),
  occurredAt: timestamptz('occurred_at').notNull().defaultNow(),
  createdOn: timestamptz('created_on').notNull().defaultNow(),
  availableAt: timestamptz('available_at').notNull().defaultNow(),
  retryCount: integer('retry_count').notNull().default(0),
  lastError: text('last_error'),
  nextRetryAt: timestamptz('next_retry_at'),
  startedOn: timestamptz('started_on'),
  keepAlive: timestamptz('keep_alive'),
  expireInSeconds: integer('expire_in_seconds').notNull().default(30),
  leaseOwner: text('lease_owner'),
  leaseToken: bigint('lease_token', { mode: 'bigint' }),
  // When the relay handed the event to its subscriptions (their state is in outbox_deliveries).
  dispatchedAt: timestamptz('dispatched_at'),
}, (t) => [
  index('outbox_events_claim_idx').on(t.availableAt, t.seq)
    .where(sql`status = ANY ('{created,active}'::outbox_status[]) AND dispatched_at IS NULL`),
  index('outbox_events_ordering_idx').on(t.orderingKey, t.seq).where(sql`ordering_key IS NOT NULL`),
  index('outbox_events_failed_idx').on(t.createdOn).where(sql`status = 'failed'::outbox_status`),
]);

// Partitioned by day of completed_on (the extension manages the partitions).
export const outboxEventsArchive = pgTable('outbox_events_archive', {
  id: uuid('id').notNull(),
  seq: bigint('seq', { mode: 'bigint' }).notNull(),
  type: text('type').notNull(),
  payload: jsonb('payload').notNull(),
  headers: jsonb('headers').$type<Record<string, unknown>>().notNull(),
  orderingKey: text('ordering_key'),
  status: outboxStatus('status').notNull(),
  occurredAt: timestamptz('occurred_at').notNull(),
  createdOn: timestamptz('created_on').notNull(),
  retryCount: integer('retry_count').notNull(),
  lastError: text('last_error'),
  startedOn: timestamptz('started_on'),
  completedOn: timestamptz('completed_on').notNull().defaultNow(),
  leaseOwner: text('lease_owner'),
  // Each subscription's outcome, for an event delivered through subscriptions.
  deliveries: jsonb('deliveries'),
  // The key is declared on each archive partition (so that pg_dump/pg_restore work), not on the
  // partitioned table itself.
}, (t) => [primaryKey({ columns: [t.id, t.completedOn] })]);

export type OutboxEvent = typeof outboxEvents.$inferSelect;
export type ArchivedOutboxEvent = typeof outboxEventsArchive.$inferSelect;

// The examples' business table (examples/setup.sql).
export const orders = pgTable('orders', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  sku: text('sku').notNull(),
  quantity: integer('quantity').notNull(),
  customer: text('customer').notNull(),
  createdAt: timestamptz('created_at').notNull().defaultNow(),
});
