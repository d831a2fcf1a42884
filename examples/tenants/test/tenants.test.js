// The tenant-per-database pattern: two databases, one outbox.databases setting,
// a relay each; requests pick their tenant through AsyncLocalStorage.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { handleCreateBooking, createBooking } from '../bookings.js';
import { closeAll, poolFor, publish, transaction, withTenant, WrongTenantError } from '../store.js';
import { fixtureText, quick, relayStats, traceEvent, waitForDelivery } from './helpers.js';

after(() => closeAll());
const us = poolFor('us');
const eu = poolFor('eu');
const NO_ACTIVE_SQL_TRANSACTION = '25P01';

test('one outbox.databases setting serves both tenant databases, a relay each (outbox_worker_stats)', async () => {
  const { rows: [setting] } = await us.query('SHOW outbox.databases');
  const served = setting['outbox.databases'].split(',').map((s) => s.trim());
  assert.ok(served.includes('tenant_us') && served.includes('tenant_eu'), served.join(','));
  const { rows: [{ database: usDb }] } = await us.query('SELECT current_database() AS database');
  const { rows: [{ database: euDb }] } = await eu.query('SELECT current_database() AS database');
  assert.deepEqual([usDb, euDb], ['tenant_us', 'tenant_eu']);
  const stats = await relayStats(us);
  assert.ok(stats.tenant_us?.pid && stats.tenant_eu?.pid, JSON.stringify(stats));
  assert.notEqual(stats.tenant_us.pid, stats.tenant_eu.pid);
});

test("requests for both tenants at once: each commits in its tenant's database and is delivered by that tenant's relay only", async () => {
  const n = quick ? 6 : 30;
  const before = await relayStats(us);
  const requests = Array.from({ length: n }, (_, i) => {
    const tenant = i % 2 === 0 ? 'us' : 'eu';
    const host = tenant === 'us' ? (i % 4 === 0 ? 'app.example.com' : 'us.example.com') : 'eu.example.com';
    return handleCreateBooking({ host, body: { title: `call ${i}`, attendee: `att-${tenant}-${i}` } })
      .then((r) => ({ ...r, tenant, i }));
  });
  const results = await Promise.all(requests);
  for (const r of results) {
    const own = r.tenant === 'us' ? us : eu;
    const other = r.tenant === 'us' ? eu : us;
    const trace = await waitForDelivery(own, r.eventId);
    assert.deepEqual(trace, { database: `tenant_${r.tenant}`, live: null, archived: 'completed',
                              delivered_in: `tenant_${r.tenant}` }, `request ${r.i}`);
    // The other tenant's database never saw it: not published there, not delivered there.
    assert.deepEqual(await traceEvent(other, r.eventId),
                     { database: r.tenant === 'us' ? 'tenant_eu' : 'tenant_us', live: null, archived: null, delivered_in: null });
    const { rows } = await other.query('SELECT 1 FROM bookings WHERE attendee = $1', [`att-${r.tenant}-${r.i}`]);
    assert.equal(rows.length, 0);
  }
  // Each relay counted exactly its own tenant's deliveries.
  const afterStats = await relayStats(us);
  const nUs = results.filter((r) => r.tenant === 'us').length;
  assert.equal(afterStats.tenant_us.delivered - before.tenant_us.delivered, nUs);
  assert.equal(afterStats.tenant_eu.delivered - before.tenant_eu.delivered, n - nUs);
});

test("rollback in tenant US: neither the booking nor the event exists, in either tenant's database", async () => {
  let eventId;
  await assert.rejects(withTenant('us', () => transaction(async (tx) => {
    await tx.query("INSERT INTO bookings (title, attendee) VALUES ('declined', 'att-rollback')");
    eventId = await publish(tx, 'booking.created', { attendee: 'att-rollback' });
    throw new Error('calendar conflict');
  })), /calendar conflict/);
  assert.ok(eventId);
  for (const pool of [us, eu]) {
    const trace = await traceEvent(pool, eventId);
    assert.deepEqual([trace.live, trace.archived, trace.delivered_in], [null, null, null]);
    const { rows } = await pool.query("SELECT 1 FROM bookings WHERE attendee = 'att-rollback'");
    assert.equal(rows.length, 0);
  }
});

test("payload round-trips exactly through tenant EU's relay (jsonb equality; numbers beyond 2^53 in payload::text)", async () => {
  const eventId = await withTenant('eu', () => transaction((tx) => publish(tx, 'booking.payload', fixtureText)));
  const trace = await waitForDelivery(eu, eventId);
  assert.equal(trace.delivered_in, 'tenant_eu');
  const { rows: [d] } = await eu.query(
    'SELECT payload = $2::jsonb AS same, payload::text AS text FROM deliveries WHERE event_id = $1', [eventId, fixtureText]);
  assert.equal(d.same, true);
  assert.match(d.text, /"beyond_2_53": 9007199254740993/);
  assert.deepEqual(JSON.parse(d.text), JSON.parse(fixtureText));
  assert.equal((await traceEvent(us, eventId)).delivered_in, null);
});

test("wrong tenant's pool inside tenant US's transaction (a publish in autocommit): the extension's guard refuses it in EU's database, nothing is stored, US rolls back", async () => {
  const err = await withTenant('us', () => transaction(async (tx) => {
    await tx.query("INSERT INTO bookings (title, attendee) VALUES ('wrong pool', 'att-wrong-pool')");
    // The mistake: a module-level pool of the other region, not this request's transaction.
    await eu.query("SELECT outbox_publish('booking.created', '{\"attendee\": \"att-wrong-pool\"}')");
  })).then(() => null, (e) => e);
  assert.ok(err, 'the publish through the EU pool was refused');
  assert.equal(err.code, NO_ACTIVE_SQL_TRANSACTION);
  assert.equal(err.message, 'outbox_publish called outside a transaction block');
  const { rows: [n] } = await eu.query(
    "SELECT count(*)::int AS n FROM outbox_events WHERE payload->>'attendee' = 'att-wrong-pool'");
  assert.equal(n.n, 0);
  for (const pool of [us, eu]) {
    const { rows } = await pool.query("SELECT 1 FROM bookings WHERE attendee = 'att-wrong-pool'");
    assert.equal(rows.length, 0);
  }
});

test("wrong tenant's transaction (EU's, open in BEGIN) while serving tenant US: the guard cannot see it, the store's publish refuses it", async () => {
  await assert.rejects(withTenant('eu', () => transaction(async (euTx) => {
    // A second BEGIN is invisible to the guard: the raw call would be stored...
    const { rows: [raw] } = await euTx.query("SELECT outbox_publish('booking.raw', '{}') AS id");
    assert.ok(raw.id);
    // ...the store knows which tenant this transaction belongs to.
    await withTenant('us', () => assert.rejects(publish(euTx, 'booking.created', { attendee: 'att-wrong-tx' }),
      (e) => e instanceof WrongTenantError && /tenant eu while serving tenant us/.test(e.message)));
    throw new Error('roll back the raw event');
  })), /roll back the raw event/);
  for (const pool of [us, eu]) {
    const { rows: [n] } = await pool.query(
      "SELECT count(*)::int AS n FROM outbox_events WHERE type IN ('booking.raw') OR payload->>'attendee' = 'att-wrong-tx'");
    assert.equal(n.n, 0);
  }
  // Outside any request, or with a pool instead of a transaction: refused too, before anything is sent.
  await assert.rejects(publish(us, 'booking.created', {}), /no tenant/);
  await withTenant('us', () => assert.rejects(publish(us, 'booking.created', {}), /not a pool/));
  // The right way, in a US request: delivered in US.
  const ok = await withTenant('us', () => createBooking({ title: 'right', attendee: 'att-right' }));
  assert.equal((await waitForDelivery(us, ok.eventId)).delivered_in, 'tenant_us');
});
