// W2 drain: publish N events into one queue system (untimed), then time how
// long C consumers take to deliver all of them, and check that every event
// was delivered exactly once. Prints one JSON line with the result.
//
//   node drain.mjs --system outbox|raw|pgq|pgboss|graphile --events N --consumers C [--batch B]
//                  [--series FILE]
//
// --series FILE keeps the run's raw series for bench/lib/plots.sh: the count
// delivered sampled every 50 ms (the relay's own counter for --system worker),
// or with --follow the table sizes the sampler takes; at most 10,000 points.
//
// Every system is driven through node-postgres from one node process (one
// connection per consumer), with the same payload (bench_payload(n)) and a
// no-op handler that only records payload.n. Connection: PGHOST (the socket
// directory), PGPORT, PGDATABASE, PGUSER.
import pg from 'pg';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
}, []));
const system = args.system;
const events = Number(args.events || 1000);
const consumers = Number(args.consumers || 1);
const batch = Number(args.batch || 100);
const timeoutMs = Number(args.timeout || 600) * 1000;
// W4: consume while something else publishes (no reset, no publish here),
// and sample table sizes every `sampleEvery` seconds.
const follow = Boolean(Number(args.follow || 0));
const sampleEvery = Number(args['sample-every'] || 0);
const seriesFile = args.series || null;

const conn = {
    host: process.env.PGHOST, port: Number(process.env.PGPORT || 5432),
    database: process.env.PGDATABASE || 'bench', user: process.env.PGUSER || 'postgres',
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The raw series (--series): rows of numbers, written at the end with a
// header of `# key value` lines that bench/lib/plots.sh reads.
let t0 = null;
const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
const series = [];
const SERIES_EVERY_MS = 50;
function writeSeries(meta, columns) {
    if (!seriesFile) return;
    const step = Math.ceil(series.length / 10000) || 1;
    const rows = series.filter((_, i) => i % step === 0 || i === series.length - 1);
    const head = Object.entries(meta).map(([k, v]) => `# ${k} ${v}`);
    writeFileSync(seriesFile, [...head, `# columns ${columns.join(' ')}`, ...rows.map((r) => r.join(' '))].join('\n') + '\n');
}

// Exactly-once bookkeeping shared by the consumers.
const seen = new Uint8Array(events + 1);
let delivered = 0;
let duplicates = 0;
let strays = 0;
function handle(payload) {
    const p = typeof payload === 'string' ? JSON.parse(payload) : payload;
    const n = Number(p && p.n);
    if (!Number.isInteger(n) || n < 1 || n > events) { strays++; return; }
    if (seen[n]) duplicates++; else { seen[n] = 1; delivered++; }
}
const done = () => delivered >= events;

async function client() {
    const c = new pg.Client(conn);
    await c.connect();
    return c;
}

// Run `consumers` loops of `step` (returns the number of events handled, 0
// when it found nothing) until every event was delivered.
// The slowest single step (one batch: claim, handle, complete) of the run, in
// ms: a run much slower than its peers shows here whether every batch was
// slow (a bad plan, JIT) or a few stalled.
let slowestStepMs = 0;
async function drainLoops(clients, step) {
    const deadline = Date.now() + timeoutMs;
    await Promise.all(clients.map(async (c, k) => {
        while (!done() && Date.now() < deadline) {
            const t0 = performance.now();
            const got = await step(c, k);
            slowestStepMs = Math.max(slowestStepMs, performance.now() - t0);
            if (got === 0) await sleep(follow ? 20 : 2);
        }
    }));
}

// Publish events 1..events with `sql`, a statement over
// generate_series($1::bigint, $2::bigint) i, 10,000 events per statement.
async function publishInChunks(db, sql) {
    for (let a = 1; a <= events; a += 10000) {
        await db.query(sql, [a, Math.min(events, a + 9999)]);
    }
}

const systems = {
    // The outbox extension, through its SQL API: claim a batch (a lease),
    // handle it outside any transaction, complete it (moves it to the archive).
    outbox: {
        async reset(db) {
            await db.query('TRUNCATE outbox_events, outbox_events_archive');
        },
        async publish(db) {
            await publishInChunks(db, `SELECT count(outbox_publish('bench.event', bench_payload(i)))
                                  FROM generate_series($1::bigint, $2::bigint) i`);
        },
        async drain(clients) {
            await drainLoops(clients, async (c, k) => {
                const r = await c.query({ name: 'claim', text: 'SELECT id, payload, lease_token FROM outbox_claim($1, NULL, $2)', values: [batch, `bench-${k}`] });
                if (r.rows.length === 0) return 0;
                const byToken = new Map();
                for (const row of r.rows) {
                    handle(row.payload);
                    const t = row.lease_token;
                    if (!byToken.has(t)) byToken.set(t, []);
                    byToken.get(t).push(row.id);
                }
                for (const [token, ids] of byToken) {
                    await c.query({ name: 'complete', text: 'SELECT outbox_complete($1::uuid[], $2)', values: [ids, token] });
                }
                return r.rows.length;
            });
        },
        async check(db) {
            const r = await db.query(`SELECT (SELECT count(*) FROM outbox_events) AS left,
                                             (SELECT count(*) FROM outbox_events_archive WHERE status = 'completed') AS done`);
            const { left, done: archived } = r.rows[0];
            return { ok: Number(left) === 0 && Number(archived) === events, detail: `outbox_events ${left}, archive ${archived}` };
        },
    },

    // The background worker (relay) with a no-op SQL subscription. The relay
    // runs all along; the subscription is made once the events are published
    // (until then no subscription matches them: they wait in outbox_events,
    // not handed over), and the clock runs from its creation until
    // outbox_events is empty. (A paused subscription would have the events
    // handed over to it as they are published, and measure the drain of
    // delivery rows instead.) One relay worker per database, so --consumers
    // does not apply.
    worker: {
        async setRelay(db, on) {
            await db.query(`ALTER SYSTEM SET outbox.enabled = ${on ? 'on' : 'off'}`);
            await db.query('SELECT pg_reload_conf()');
        },
        async reset(db) {
            await this.setRelay(db, true);
            const deadline = Date.now() + 20000;
            while (Date.now() < deadline) {
                const r = await db.query(`SELECT count(*) AS n FROM outbox_worker_stats()
                                           WHERE database = current_database() AND pid IS NOT NULL`);
                if (Number(r.rows[0].n) > 0) break;
                await sleep(50);
            }
            await db.query(`DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'`);
            await db.query('TRUNCATE outbox_events, outbox_events_archive');
        },
        publish: null, // set below: same as outbox
        async drain(clients, db) {
            const before = await db.query('SELECT coalesce(sum(delivered), 0) AS d FROM outbox_worker_stats()');
            await db.query(`SELECT outbox_subscribe('bench_noop', 'bench.*', 'bench_noop')`);
            const deadline = Date.now() + timeoutMs;
            // --series: the relay's delivered counter (shared memory, cheap),
            // read at most every 50 ms between the polls.
            const counted = async () => Number((await db.query('SELECT coalesce(sum(delivered), 0) AS d FROM outbox_worker_stats()')).rows[0].d) - Number(before.rows[0].d);
            let sampled = -Infinity;
            for (;;) {
                if (seriesFile && performance.now() - sampled >= SERIES_EVERY_MS) {
                    sampled = performance.now();
                    series.push([+since().toFixed(3), await counted()]);
                }
                const r = await db.query('SELECT NOT EXISTS (SELECT FROM outbox_events) AS empty');
                if (r.rows[0].empty || Date.now() > deadline) break;
                await sleep(5);
            }
            this.handled = await counted();
            if (seriesFile) series.push([+since().toFixed(3), this.handled]);
        },
        async check(db) {
            // The handler is a no-op: count what the archive holds instead.
            const r = await db.query(`SELECT count(*) AS archived, count(DISTINCT (payload->>'n')::bigint) AS distinct_n,
                                             (SELECT count(*) FROM outbox_events) AS left
                                        FROM outbox_events_archive WHERE status = 'completed'`);
            const { archived, distinct_n: distinctN, left } = r.rows[0];
            delivered = Number(distinctN);
            duplicates = Number(archived) - Number(distinctN);
            await db.query(`DELETE FROM outbox_subscriptions WHERE name LIKE 'bench%'`);
            await this.setRelay(db, false);
            return { ok: Number(left) === 0 && Number(archived) === events && this.handled === events,
                     detail: `outbox_events ${left}, archive ${archived}, relay counted ${this.handled} delivered` };
        },
    },

    // The outbox extension, claims held by the consumer's transaction:
    // BEGIN, outbox_claim_xact(100), handle, outbox_complete, COMMIT. No
    // lease: a consumer that dies rolls back and the events are due again.
    xact: {
        reset: null, publish: null, check: null, // set below: same as outbox
        async drain(clients) {
            await drainLoops(clients, async (c, k) => {
                await c.query('BEGIN');
                try {
                    const r = await c.query({ name: 'claimx', text: 'SELECT id, payload, lease_token FROM outbox_claim_xact($1, $2)', values: [batch, `bench-${k}`] });
                    if (r.rows.length === 0) { await c.query('COMMIT'); return 0; }
                    for (const row of r.rows) handle(row.payload);
                    await c.query({ name: 'complete', text: 'SELECT outbox_complete($1::uuid[], $2)', values: [r.rows.map((row) => row.id), r.rows[0].lease_token] });
                    await c.query('COMMIT');
                    return r.rows.length;
                } catch (e) {
                    await c.query('ROLLBACK');
                    throw e;
                }
            });
        },
    },

    // The floor: a bare table, plain INSERT, and one statement per batch that
    // deletes due rows (SKIP LOCKED) into the archive and returns them.
    raw: {
        async reset(db) {
            await db.query('TRUNCATE raw_events, raw_events_archive');
        },
        async publish(db) {
            await publishInChunks(db, `INSERT INTO raw_events (id, type, payload)
                                SELECT gen_random_uuid(), 'bench.event', bench_payload(i)
                                  FROM generate_series($1::bigint, $2::bigint) i`);
        },
        async drain(clients) {
            const sql = `WITH c AS (SELECT id FROM raw_events ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED),
                              d AS (DELETE FROM raw_events r USING c WHERE r.id = c.id RETURNING r.*)
                         INSERT INTO raw_events_archive (id, seq, type, payload, headers, ordering_key, status,
                                                         occurred_at, created_on, retry_count, last_error, started_on, lease_owner)
                         SELECT id, seq, type, payload, headers, ordering_key, 'completed',
                                occurred_at, created_on, retry_count, last_error, started_on, lease_owner FROM d
                         RETURNING id, payload`;
            await drainLoops(clients, async (c) => {
                const r = await c.query({ name: 'take', text: sql, values: [batch] });
                for (const row of r.rows) handle(row.payload);
                return r.rows.length;
            });
        },
        async check(db) {
            const r = await db.query(`SELECT (SELECT count(*) FROM raw_events) AS left,
                                             (SELECT count(*) FROM raw_events_archive) AS done`);
            const { left, done: archived } = r.rows[0];
            return { ok: Number(left) === 0 && Number(archived) === events, detail: `raw_events ${left}, archive ${archived}` };
        },
    },

    // PgQ: one queue per consumer (PgQ hands each batch to every consumer
    // of a queue; without pgq_coop, work is shared by partitioning queues).
    // The publisher ticks after every `batch` events, so batches hold `batch`
    // events like the other systems'; pgqd runs all along (maintenance and
    // its own ticks).
    pgq: {
        queues: () => Array.from({ length: consumers }, (_, k) => `bench_q${k}`),
        async reset(db) {
            const r = await db.query(`SELECT queue_name FROM pgq.queue WHERE queue_name LIKE 'bench\\_q%'`);
            for (const { queue_name: q } of r.rows) {
                const cs = await db.query('SELECT consumer_name FROM pgq.get_consumer_info($1)', [q]);
                for (const { consumer_name: c } of cs.rows) await db.query('SELECT pgq.unregister_consumer($1, $2)', [q, c]);
                await db.query('SELECT pgq.drop_queue($1)', [q]);
            }
            for (const q of this.queues()) {
                await db.query('SELECT pgq.create_queue($1)', [q]);
                await db.query(`SELECT pgq.set_queue_config($1, 'ticker_max_count', '1')`, [q]);
                await db.query('SELECT pgq.register_consumer($1, $2)', [q, 'bench']);
            }
        },
        async publish(db) {
            const qs = this.queues();
            let k = 0;
            for (let a = 1; a <= events; a += batch) {
                const b = Math.min(events, a + batch - 1);
                const q = qs[k++ % qs.length];
                await db.query(`SELECT count(pgq.insert_event($1, 'bench.event', bench_payload(i)::text))
                                  FROM generate_series($2::bigint, $3::bigint) i`, [q, a, b]);
                await db.query('SELECT pgq.ticker($1)', [q]);
            }
            for (const q of qs) await db.query('SELECT pgq.ticker($1)', [q]);
        },
        async drain(clients) {
            const qs = this.queues();
            await drainLoops(clients, async (c, k) => {
                const b = await c.query({ name: 'next', text: 'SELECT pgq.next_batch($1, $2) AS b', values: [qs[k], 'bench'] });
                const id = b.rows[0].b;
                if (id === null) return 0;
                const r = await c.query({ name: 'events', text: 'SELECT ev_id, ev_data FROM pgq.get_batch_events($1)', values: [id] });
                for (const row of r.rows) handle(row.ev_data);
                await c.query({ name: 'finish', text: 'SELECT pgq.finish_batch($1)', values: [id] });
                return r.rows.length || 1;
            });
        },
        async check(db) {
            const r = await db.query(`SELECT coalesce(sum(pending_events), 0) AS pending
                                        FROM pgq.get_consumer_info() WHERE queue_name LIKE 'bench\\_q%'`);
            const pending = Number(r.rows[0].pending);
            return { ok: pending === 0, detail: `pending events ${pending}` };
        },
    },

    // pg-boss, through its public API: insert() to publish, and a tight
    // fetch()/complete() loop per consumer (its work() loop waits at least
    // pollingIntervalSeconds, 0.5 s minimum, between fetches even when a
    // batch came back full, which would measure the timer, not the queue).
    pgboss: {
        boss: null,
        async open() {
            const PgBoss = require('pg-boss');
            this.boss = new PgBoss({ ...conn, max: consumers + 2 });
            this.boss.on('error', (e) => console.error('pg-boss:', e.message));
            await this.boss.start();
        },
        async reset(db) {
            // deleteQueue() refuses a queue that still has jobs (foreign key).
            await db.query(`DELETE FROM pgboss.job WHERE name = 'bench'`);
            await db.query(`DELETE FROM pgboss.archive WHERE name = 'bench'`);
            if (await this.boss.getQueue('bench')) await this.boss.deleteQueue('bench');
            await this.boss.createQueue('bench');
        },
        async publish(db) {
            for (let a = 1; a <= events; a += 1000) {
                const jobs = [];
                for (let n = a; n <= Math.min(events, a + 999); n++) jobs.push({ name: 'bench', data: null, n });
                const r = await db.query('SELECT array_agg(bench_payload(n) ORDER BY n) AS p FROM generate_series($1::bigint, $2::bigint) n', [a, Math.min(events, a + 999)]);
                r.rows[0].p.forEach((p, i) => { jobs[i].data = p; delete jobs[i].n; });
                await this.boss.insert(jobs);
            }
        },
        async drain() {
            const boss = this.boss;
            await drainLoops(Array.from({ length: consumers }), async () => {
                const jobs = await boss.fetch('bench', { batchSize: batch });
                if (!jobs || jobs.length === 0) return 0;
                for (const j of jobs) handle(j.data);
                await boss.complete('bench', jobs.map((j) => j.id));
                return jobs.length;
            });
        },
        async check(db) {
            const r = await db.query(`SELECT count(*) FILTER (WHERE state = 'completed') AS done,
                                             count(*) FILTER (WHERE state <> 'completed') AS left
                                        FROM pgboss.job WHERE name = 'bench'`);
            const { left, done: completed } = r.rows[0];
            return { ok: Number(left) === 0 && Number(completed) === events, detail: `completed ${completed}, not completed ${left}` };
        },
        async close() { await this.boss.stop({ graceful: false, wait: true }); },
    },

    // graphile-worker, through its own runner: add_job() (its SQL API) to
    // publish, run({ concurrency: C }) with the task handler to consume.
    graphile: {
        pool: null,
        async open() {
            const { runMigrations } = require('graphile-worker');
            this.pool = new pg.Pool({ ...conn, max: consumers + 2 });
            await runMigrations({ pgPool: this.pool, logger: this.logger() });
        },
        logger() {
            const { Logger } = require('graphile-worker');
            return new Logger(() => (level, message) => { if (level === 'error') console.error('graphile-worker:', message); });
        },
        async reset(db) {
            await db.query('DELETE FROM graphile_worker._private_jobs');
            await db.query('VACUUM graphile_worker._private_jobs');
        },
        async publish(db) {
            await publishInChunks(db, `SELECT count(graphile_worker.add_job('bench', bench_payload(i)::json))
                                  FROM generate_series($1::bigint, $2::bigint) i`);
        },
        async drain() {
            const { run } = require('graphile-worker');
            const runner = await run({
                pgPool: this.pool, concurrency: consumers, noHandleSignals: true, pollInterval: 1000,
                logger: this.logger(),
                taskList: { bench: async (payload) => { handle(payload); } },
            });
            const deadline = Date.now() + timeoutMs;
            while (!done() && Date.now() < deadline) await sleep(2);
            // Handled is not done: a job is done once the runner has
            // completed it in the database (it deletes the row).
            const c = await client();
            while (Date.now() < deadline) {
                const r = await c.query('SELECT NOT EXISTS (SELECT FROM graphile_worker._private_jobs) AS empty');
                if (r.rows[0].empty) break;
                await sleep(2);
            }
            await c.end();
            await runner.stop();
        },
        async check(db) {
            const r = await db.query('SELECT count(*) AS left FROM graphile_worker._private_jobs');
            const left = Number(r.rows[0].left);
            return { ok: left === 0, detail: `jobs left ${left}` };
        },
        async close() { await this.pool.end(); },
    },
};

// W4 samples: sizes of the outbox tables and their dead tuples.
const W4_COLUMNS = ['t', 'published', 'delivered', 'outbox_table', 'outbox_indexes', 'archive_table', 'archive_indexes',
    'dead_tuples', 'live_tuples', 'autovacuums'];
async function sampler(db) {
    const samples = [];
    const take = async () => {
        const r = await db.query(`
            SELECT pg_table_size('outbox_events') AS outbox_table,
                   pg_indexes_size('outbox_events') AS outbox_indexes,
                   (SELECT sum(pg_table_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'outbox_events_archive'::regclass) AS archive_table,
                   (SELECT sum(pg_indexes_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'outbox_events_archive'::regclass) AS archive_indexes,
                   (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass) AS dead_tuples,
                   (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass) AS live_tuples,
                   (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relid = 'outbox_events'::regclass) AS autovacuums,
                   (SELECT last_value FROM bench_n) AS published`);
        const row = Object.fromEntries(Object.entries(r.rows[0]).map(([k, v]) => [k, Number(v)]));
        const line = { workload: 'W4sample', t: +(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1), delivered, ...row };
        samples.push(line);
        series.push(W4_COLUMNS.map((k) => line[k]));
        console.log(JSON.stringify(line));
    };
    let stop = false;
    const loop = (async () => {
        while (!stop) {
            await take();
            const until = Date.now() + sampleEvery * 1000;
            while (!stop && Date.now() < until) await sleep(50);
        }
        await take();
    })();
    return async () => { stop = true; await loop; };
}

systems.worker.publish = systems.outbox.publish;
systems.xact.reset = systems.outbox.reset;
systems.xact.publish = systems.outbox.publish;
systems.xact.check = systems.outbox.check;

async function main() {
    const s = systems[system];
    if (!s) throw new Error(`unknown system ${system}`);
    const db = await client();
    if (s.open) await s.open();
    if (!follow) {
        await s.reset(db);
        await s.publish(db);
        await db.query('CHECKPOINT');
    }
    const clients = ['pgboss', 'graphile', 'worker'].includes(system) ? [] : await Promise.all(Array.from({ length: consumers }, client));
    t0 = process.hrtime.bigint();
    const stopSampler = sampleEvery > 0 ? await sampler(await client()) : null;
    // --series, consumers in this process: their delivered count every 50 ms.
    const countHere = seriesFile && !follow && system !== 'worker';
    if (countHere) series.push([0, 0]);
    const ticker = countHere ? setInterval(() => series.push([+since().toFixed(3), delivered]), SERIES_EVERY_MS) : null;
    await s.drain(clients, db);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (ticker) { clearInterval(ticker); series.push([+seconds.toFixed(3), delivered]); }
    if (stopSampler) await stopSampler();
    await Promise.all(clients.map((c) => c.end()));
    const check = await s.check(db);
    if (s.close) await s.close();
    await db.end();
    const missing = events - delivered;
    const ok = missing === 0 && duplicates === 0 && strays === 0 && check.ok;
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (follow) {
        writeSeries({ workload: 'W4', system, consumers, events, seconds: seconds.toFixed(1), sample_every_s: sampleEvery, date }, W4_COLUMNS);
    } else {
        writeSeries({ workload: 'drain', system, consumers, events, batch, seconds: seconds.toFixed(3), rate: Math.round(delivered / seconds), date }, ['t', 'delivered']);
    }
    console.log(JSON.stringify({
        workload: follow ? 'W4' : 'W2', system, consumers, events, batch, seconds: +seconds.toFixed(3),
        rate: +(delivered / seconds).toFixed(1), slowest_step_ms: slowestStepMs ? +slowestStepMs.toFixed(1) : null, delivered, duplicates, missing, strays,
        db_check: check.detail, ok,
    }));
    process.exit(ok ? 0 : 1);
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(2); });
