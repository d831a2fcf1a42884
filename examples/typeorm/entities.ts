// The entities TypeORM maps: the business table, and the outbox tables for
// reading (write them only through the extension's functions; keep them out
// of TypeORM's synchronize and migrations: they belong to the extension).
//
// Column types are spelled out: tsx (esbuild) emits no decorator metadata.
import { Column, CreateDateColumn, Entity, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';

@Entity({ name: 'orders' })
export class Order {
  @PrimaryGeneratedColumn('identity', { type: 'bigint', generatedIdentity: 'ALWAYS' })
  id: string; // bigint: pg returns it as a string

  @Column({ type: 'text' })
  sku: string;

  @Column({ type: 'integer' })
  quantity: number;

  @Column({ type: 'text' })
  customer: string;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt: Date;
}

export type OutboxStatus = 'created' | 'active' | 'completed' | 'failed';

@Entity({ name: 'outbox_events', synchronize: false })
export class OutboxEvent {
  @PrimaryColumn({ type: 'uuid' })
  id: string;

  @Column({ type: 'bigint' })
  seq: string;

  @Column({ type: 'text' })
  type: string;

  @Column({ type: 'jsonb' })
  payload: unknown;

  @Column({ type: 'jsonb' })
  headers: Record<string, unknown>;

  @Column({ name: 'ordering_key', type: 'text', nullable: true })
  orderingKey: string | null;

  @Column({ type: 'text' }) // the enum outbox_status, read as text
  status: OutboxStatus;

  @Column({ name: 'occurred_at', type: 'timestamptz' })
  occurredAt: Date;

  @Column({ name: 'retry_count', type: 'integer' })
  retryCount: number;

  @Column({ name: 'dispatched_at', type: 'timestamptz', nullable: true })
  dispatchedAt: Date | null;
}

// Partitioned by day of completed_on; its key (id, completed_on) lives on the partitions.
@Entity({ name: 'outbox_events_archive', synchronize: false })
export class OutboxEventArchive {
  @PrimaryColumn({ type: 'uuid' })
  id: string;

  @PrimaryColumn({ name: 'completed_on', type: 'timestamptz' })
  completedOn: Date;

  @Column({ type: 'bigint' })
  seq: string;

  @Column({ type: 'text' })
  type: string;

  @Column({ type: 'jsonb' })
  payload: unknown;

  @Column({ type: 'text' })
  status: OutboxStatus;
}

// What the examples' subscription handler records (examples/setup.sql).
@Entity({ name: 'deliveries', synchronize: false })
export class Delivery {
  @PrimaryColumn({ name: 'event_id', type: 'uuid' })
  eventId: string;

  @Column({ type: 'text' })
  type: string;

  @Column({ type: 'jsonb' })
  payload: unknown;

  @Column({ type: 'integer' })
  attempt: number;
}
