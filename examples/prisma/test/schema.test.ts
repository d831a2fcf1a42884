// The Prisma models (prisma/schema.prisma) match what CREATE EXTENSION outbox
// made. `prisma db pull` needs the schema engine binary, which is not on npm
// and cannot be fetched here; instead Prisma's own reading of the committed
// schema (its DMMF, from `prisma generate` with a small generator) is compared
// with the live catalog, mapped the way db pull maps PostgreSQL types.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newPrismaClient } from '../place-order.ts';

const prisma = newPrismaClient();
const root = fileURLToPath(new URL('..', import.meta.url));
let dmmf: any;
const tmp = mkdtempSync(join(tmpdir(), 'outbox-prisma-dmmf-'));

before(() => {
  const schema = readFileSync(join(root, 'prisma/schema.prisma'), 'utf8').replace(
    /generator client \{[\s\S]*?\n\}/,
    `generator dmmf {\n  provider = "node ${join(root, 'test/dmmf-generator.mjs')}"\n  output   = "${join(tmp, 'dmmf.json')}"\n}`);
  writeFileSync(join(tmp, 'schema.prisma'), schema);
  execFileSync(join(root, 'node_modules/.bin/prisma'), ['generate', '--schema', join(tmp, 'schema.prisma')],
               { cwd: root, stdio: 'pipe' });
  dmmf = JSON.parse(readFileSync(join(tmp, 'dmmf.json'), 'utf8'));
});
after(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await prisma.$disconnect();
});

// PostgreSQL type -> [Prisma scalar type, native type] as `prisma db pull` writes it.
const pullMapping: Record<string, [string, unknown]> = {
  uuid: ['String', ['Uuid', []]],
  text: ['String', null],
  jsonb: ['Json', null],
  bigint: ['BigInt', null],
  integer: ['Int', null],
  'timestamp with time zone': ['DateTime', ['Timestamptz', ['6']]],
};

type Col = { name: string; type: string; not_null: boolean; has_default: boolean; is_enum: boolean };

async function live(table: string) {
  const columns = await prisma.$queryRaw<Col[]>`
    SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
           (a.atthasdef OR a.attidentity <> '') AS has_default, t.typtype = 'e' AS is_enum
      FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
     WHERE a.attrelid = ${table}::regclass AND a.attnum > 0 AND NOT a.attisdropped
     ORDER BY a.attname COLLATE "C"`;
  const [pk] = await prisma.$queryRaw<{ cols: string[] }[]>`
    SELECT array_agg(a.attname::text ORDER BY k.ord) AS cols
      FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord), pg_attribute a
     WHERE c.conrelid = (
             -- The table's own primary key; outbox_events_archive (partitioned) has it on every partition
             -- instead, so that pg_dump/pg_restore work: take the key of its default partition.
             SELECT coalesce(
                 (SELECT p.conrelid FROM pg_constraint p WHERE p.conrelid = ${table}::regclass AND p.contype = 'p'),
                 (SELECT i.inhrelid FROM pg_inherits i JOIN pg_class d ON d.oid = i.inhrelid
                   WHERE i.inhparent = ${table}::regclass AND pg_get_expr(d.relpartbound, d.oid) = 'DEFAULT')))
       AND c.contype = 'p' AND a.attrelid = c.conrelid AND a.attnum = k.attnum`;
  const indexes = await prisma.$queryRaw<{ name: string; cols: string[] }[]>`
    SELECT i.relname::text AS name, array_agg(a.attname::text ORDER BY k.ord) AS cols
      FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid,
           unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord), pg_attribute a
     WHERE x.indrelid = ${table}::regclass AND NOT x.indisprimary AND a.attrelid = x.indrelid AND a.attnum = k.attnum
     GROUP BY i.relname ORDER BY 1`;
  return { columns, pk: pk.cols, indexes };
}

for (const [modelName, table] of [['OutboxEvent', 'outbox_events'], ['OutboxEventArchive', 'outbox_events_archive']]) {
  test(`Prisma model ${modelName} matches the live ${table} (columns, types, native types, optionality, defaults, keys, indexes)`,
    async () => {
      const model = dmmf.models.find((m: any) => m.name === modelName);
      assert.ok(model, `model ${modelName} in the schema`);
      assert.equal(model.dbName, table);
      const enums = new Map<string, string>(dmmf.enums.map((e: any) => [e.name, e.dbName ?? e.name]));
      const dbName = (f: any) => f.dbName ?? f.name;
      const db = await live(table);
      const fromModel = model.fields.filter((f: any) => f.kind !== 'object').map((f: any) => ({
        name: dbName(f),
        type: f.kind === 'enum' ? `enum ${enums.get(f.type)}` : f.type,
        nativeType: f.nativeType ?? null,
        required: f.isRequired,
        hasDefault: f.hasDefaultValue,
      })).sort((a: any, b: any) => (a.name < b.name ? -1 : 1));
      const fromDb = db.columns.map((c) => {
        const mapped = c.is_enum ? [`enum ${c.type}`, null] : pullMapping[c.type];
        assert.ok(mapped, `no Prisma mapping for ${c.name} ${c.type}`);
        return { name: c.name, type: mapped[0], nativeType: mapped[1], required: c.not_null, hasDefault: c.has_default };
      });
      assert.deepEqual(fromModel, fromDb);
      // Keys and indexes (index names as @@index(map: ...)).
      const fieldToColumn = new Map<string, string>(model.fields.map((f: any) => [f.name, dbName(f)]));
      const modelIndexes = dmmf.indexes.filter((i: any) => i.model === modelName);
      const id = modelIndexes.find((i: any) => i.type === 'id');
      assert.deepEqual(id.fields.map((f: any) => fieldToColumn.get(f.name)), db.pk);
      const normal = modelIndexes.filter((i: any) => i.type === 'normal')
        .map((i: any) => ({ name: i.dbName, cols: i.fields.map((f: any) => fieldToColumn.get(f.name)) }))
        .sort((a: any, b: any) => (a.name < b.name ? -1 : 1));
      assert.deepEqual(normal, db.indexes.map((i) => ({ ...i })));
    });
}

test('Prisma enum OutboxStatus has the live labels of outbox_status, in order', async () => {
  const e = dmmf.enums.find((x: any) => x.dbName === 'outbox_status');
  const [row] = await prisma.$queryRaw<{ labels: string[] }[]>`
    SELECT array_agg(enumlabel::text ORDER BY enumsortorder) AS labels FROM pg_enum WHERE enumtypid = 'outbox_status'::regtype`;
  assert.deepEqual(e.values.map((v: any) => v.dbName ?? v.name), row.labels);
});

test('the generated client reads every field of both models from the live tables', async () => {
  await prisma.outboxEvent.findMany({ take: 1 });
  await prisma.outboxEventArchive.findMany({ take: 1 });
});
