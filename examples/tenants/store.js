// Tenant-aware database access (seed 004's pattern, with node-postgres): the
// request's tenant lives in AsyncLocalStorage, and every query of the request
// goes to that tenant's pool, so no function needs the tenant passed along.
//
// Publishing goes through the same store: publish(tx, ...) takes the
// transaction of the current tenant and refuses one of another tenant. The
// extension catches the other way of getting it wrong: a publish sent through
// another tenant's pool outside a transaction (outbox.require_transaction =
// error per database, see setup.sql).
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { TENANTS } from './tenants.js';

const als = new AsyncLocalStorage();
const pools = new Map();
const tenantOfClient = new WeakMap(); // the tenant each transaction's client belongs to

export class WrongTenantError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WrongTenantError';
  }
}

/** The pool of a tenant (one per tenant, created on first use). */
export function poolFor(tenant) {
  if (!TENANTS[tenant]) throw new Error(`unknown tenant ${tenant}`);
  if (!pools.has(tenant)) {
    const connectionString = TENANTS[tenant].url();
    if (!connectionString) throw new Error(`no connection URL for tenant ${tenant}`);
    pools.set(tenant, new pg.Pool({ connectionString, max: 4 }));
  }
  return pools.get(tenant);
}

/** Run fn with `tenant` as the current tenant (a request handler's wrapper). */
export function withTenant(tenant, fn) {
  if (!TENANTS[tenant]) throw new Error(`unknown tenant ${tenant}`);
  return als.run({ tenant }, fn);
}

export function currentTenant() {
  const store = als.getStore();
  if (!store) throw new WrongTenantError('no tenant: call this inside withTenant()');
  return store.tenant;
}

/** The current tenant's pool: getTenantAwarePrisma(), for node-postgres. */
export function getTenantPool() {
  return poolFor(currentTenant());
}

/** Run fn(tx) in a transaction on the current tenant's database: BEGIN, COMMIT, or ROLLBACK if fn throws. */
export async function transaction(fn) {
  const tenant = currentTenant();
  const client = await poolFor(tenant).connect();
  tenantOfClient.set(client, tenant);
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    tenantOfClient.delete(client);
    client.release();
  }
}

/**
 * Publish an event in tx, a transaction of the current tenant (from transaction()).
 * payload: any JSON value, or a JSON text (sent as is).
 */
export async function publish(tx, type, payload, { orderingKey = null } = {}) {
  const tenant = currentTenant();
  const owner = tenantOfClient.get(tx);
  if (owner === undefined) throw new WrongTenantError('publish needs the transaction of transaction(), not a pool');
  if (owner !== tenant) {
    throw new WrongTenantError(`publish in a transaction of tenant ${owner} while serving tenant ${tenant}`);
  }
  const { rows } = await tx.query('SELECT outbox_publish($1, $2::jsonb, ordering_key => $3) AS id',
                                  [type, typeof payload === 'string' ? payload : JSON.stringify(payload), orderingKey]);
  return rows[0].id;
}

export async function closeAll() {
  await Promise.all([...pools.values()].map((p) => p.end()));
  pools.clear();
}
