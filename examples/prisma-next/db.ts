// The Prisma Next client (long-lived Node process facade).
// generated/contract.json and contract.d.ts are emitted from contract.ts (see README) and committed.
import postgres from '@prisma-next/postgres/runtime';
import type { Contract } from './generated/contract.d.ts';
import contractJson from './generated/contract.json' with { type: 'json' };

export function newDb(url = process.env.DATABASE_URL) {
  if (!url) throw new Error('DATABASE_URL is not set');
  // Through PgBouncer in transaction pooling: the runtime sends queries on a
  // pg Pool with unnamed prepared statements (db.prepare() is not used here).
  // verifyMarker: false -- the database was not signed with `prisma-next db
  // sign` (its tables were made by SQL: examples/setup.sql); a signed
  // database would keep the default check on first use.
  return postgres<Contract>({ contractJson, url, verifyMarker: false });
}

export type Db = ReturnType<typeof newDb>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
