// The Drizzle schema (schema.ts) matches what CREATE EXTENSION outbox made, as
// the live database describes it: columns, types, nullability, defaults,
// identity, primary keys, the status enum and the indexes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'drizzle-orm';
import { getTableConfig, type PgTable } from 'drizzle-orm/pg-core';
import { outboxEvents, outboxEventsArchive, outboxStatus } from '../schema.ts';
import { connect } from './helpers.ts';

const { pool, db } = connect();
after(() => pool.end());

type Column = { name: string; type: string; notNull: boolean; hasDefault: boolean; identity: string };

function fromSchema(table: PgTable) {
  const config = getTableConfig(table);
  const columns: Column[] = config.columns.map((c) => {
    const identity = (c as any).generatedIdentity?.type === 'always' ? 'a' : (c as any).generatedIdentity ? 'd' : '';
    return { name: c.name, type: c.getSQLType(), notNull: c.notNull, hasDefault: c.hasDefault || identity !== '', identity };
  });
  const primaryKey = [...config.columns.filter((c) => c.primary).map((c) => c.name),
                      ...config.primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name))];
  const indexes = config.indexes.map((i) => i.config.name).sort();
  return { name: config.name, columns: columns.sort((a, b) => a.name.localeCompare(b.name)), primaryKey, indexes };
}

async function fromDatabase(table: string) {
  const { rows: columns } = await db.execute<Column & Record<string, unknown>>(sql`
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
           (a.atthasdef OR a.attidentity <> '') AS "hasDefault", a.attidentity::text AS identity
      FROM pg_attribute a
     WHERE a.attrelid = ${table}::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attname COLLATE "C"`);
  const { rows: [pk] } = await db.execute<{ cols: string[] }>(sql`
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
      FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord), pg_attribute a
     WHERE c.conrelid = (
             -- The table's own primary key; outbox_events_archive (partitioned) has it on every partition
             -- instead, so that pg_dump/pg_restore work: take the key of its default partition.
             SELECT coalesce(
                 (SELECT p.conrelid FROM pg_constraint p WHERE p.conrelid = ${table}::regclass AND p.contype = 'p'),
                 (SELECT i.inhrelid FROM pg_inherits i JOIN pg_class d ON d.oid = i.inhrelid
                   WHERE i.inhparent = ${table}::regclass AND pg_get_expr(d.relpartbound, d.oid) = 'DEFAULT')))
       AND c.contype = 'p' AND a.attrelid = c.conrelid AND a.attnum = k.attnum`);
  const { rows: idx } = await db.execute<{ name: string }>(sql`
    SELECT i.relname AS name FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
     WHERE x.indrelid = ${table}::regclass AND NOT x.indisprimary ORDER BY 1`);
  return { name: table, columns: columns.map((c) => ({ ...c })), primaryKey: pk.cols, indexes: idx.map((r) => r.name) };
}

for (const table of [outboxEvents, outboxEventsArchive]) {
  const name = getTableConfig(table).name;
  test(`Drizzle schema of ${name} matches the live table (columns, types, nullability, defaults, identity, keys, indexes)`,
    async () => {
      const live = await fromDatabase(name);
      const mine = fromSchema(table);
      mine.columns.sort((a, b) => (a.name < b.name ? -1 : 1));
      assert.deepEqual(mine, live);
    });
}

test('Drizzle enum outbox_status has the live labels, in order', async () => {
  const { rows: [e] } = await db.execute<{ labels: string[] }>(sql`
    SELECT array_agg(enumlabel::text ORDER BY enumsortorder) AS labels FROM pg_enum WHERE enumtypid = 'outbox_status'::regtype`);
  assert.deepEqual([...outboxStatus.enumValues], e.labels);
});

test('select() with every column of both tables runs against the live database', async () => {
  await db.select().from(outboxEvents).limit(1);
  await db.select().from(outboxEventsArchive).limit(1);
});
