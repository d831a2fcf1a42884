// A consumer over the SQL API, with node-postgres: claim a batch with a lease,
// heartbeat it while the handler works, complete or fail each event, and on
// SIGTERM stop claiming, finish the event in hand and give back (release) the
// ones not started. Every call is one statement in autocommit: nothing relies
// on session state, so it works through PgBouncer in transaction pooling.
//
//   DATABASE_URL=... node consumer.js 'order.*'
import pg from 'pg';

const LEASE_LOST = 'OB001';

/** Throw this from a handler for an event that must not be retried. */
export class PermanentError extends Error {}

export class OutboxConsumer {
  /**
   * pool: a pg.Pool. handler(event): async; throws to fail the attempt.
   * types: event type patterns ('order.*'); leaseSeconds: lease of a claim;
   * heartbeatMs: how often the lease is extended while events are held.
   */
  constructor(pool, { handler, types = null, name = `node-${process.pid}`, batchSize = 10, leaseSeconds = 30,
                      heartbeatMs = null, idleMs = 250, retryIn = null, log = () => {} }) {
    this.pool = pool;
    this.handler = handler;
    this.types = types;
    this.name = name;
    this.batchSize = batchSize;
    this.leaseSeconds = leaseSeconds;
    this.heartbeatMs = heartbeatMs ?? Math.max(200, (leaseSeconds * 1000) / 3);
    this.idleMs = idleMs;
    this.retryIn = retryIn; // null: the server's backoff (outbox.base_backoff, full jitter)
    this.log = log;
    this.stopping = false;
    this.wake = null;
    this.held = new Map(); // id -> { event, token } for events claimed and not yet given back
    this.ledger = { claimed: [], completed: [], failed: [], retried: [], released: [], lost: [] };
    this.queue = Promise.resolve(); // lease calls of this consumer, one at a time
  }

  /** Claim and process until stop(); resolves when everything held is given back. */
  async run() {
    while (!this.stopping) {
      const batch = await this.claim();
      if (batch.length === 0) {
        await new Promise((resolve) => { this.wake = resolve; setTimeout(resolve, this.idleMs); });
        continue;
      }
      await this.processBatch(batch);
    }
  }

  /** Ask run() to finish: the event in the handler completes, the rest is released. */
  stop() {
    this.stopping = true;
    if (this.wake) this.wake();
  }

  async claim() {
    const { rows } = await this.pool.query(
      `SELECT id, type, payload, headers, ordering_key, occurred_at, attempt, lease_token, lease_expires_at
         FROM outbox_claim(batch_size => $1, lease => make_interval(secs => $2), consumer => $3, types => $4::text[])`,
      [this.batchSize, this.leaseSeconds, this.name, this.types],
    );
    for (const event of rows) {
      this.held.set(event.id, { event, token: event.lease_token }); // lease_token: bigint, as a string
      this.ledger.claimed.push(event.id);
    }
    return rows;
  }

  async processBatch(batch) {
    const timer = setInterval(() => this.serial(() => this.heartbeat()).catch((err) => this.log(`heartbeat: ${err.message}`)),
                              this.heartbeatMs);
    try {
      for (const event of batch) {
        if (this.stopping) break;
        if (!this.held.has(event.id)) continue; // lease lost meanwhile
        let error = null;
        try {
          await this.handler(event);
        } catch (err) {
          error = err;
        }
        await this.serial(() => (error ? this.fail(event, error) : this.complete(event)));
      }
    } finally {
      clearInterval(timer);
      // Shutting down (or lease lost): give back what was not started.
      await this.serial(() => this.releaseAll());
    }
  }

  // Lease calls run one at a time, so a heartbeat never names an event that a
  // completion is moving to the archive at the same moment.
  serial(fn) {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => {});
    return next;
  }

  take(id, outcome) {
    if (!this.held.delete(id)) throw new Error(`event ${id} is not held (double ${outcome})`);
    this.ledger[outcome].push(id);
  }

  async complete(event) {
    const { token } = this.held.get(event.id) ?? {};
    if (token === undefined) return;
    try {
      await this.pool.query('SELECT outbox_complete(ARRAY[$1]::uuid[], $2) AS n', [event.id, token]);
      this.take(event.id, 'completed');
    } catch (err) {
      if (err.code !== LEASE_LOST) throw err;
      this.take(event.id, 'lost'); // someone else has it now: not ours to complete
    }
  }

  async fail(event, error) {
    const { token } = this.held.get(event.id) ?? {};
    if (token === undefined) return;
    const retryable = !(error instanceof PermanentError);
    try {
      const { rows } = await this.pool.query(
        'SELECT outbox_fail($1, $2, $3, retry_in => $4::interval, retryable => $5) AS status',
        [event.id, token, String(error?.message ?? error), this.retryIn, retryable],
      );
      this.take(event.id, rows[0].status === 'failed' ? 'failed' : 'retried');
    } catch (err) {
      if (err.code !== LEASE_LOST) throw err;
      this.take(event.id, 'lost');
    }
  }

  async heartbeat() {
    for (const [token, ids] of this.heldByToken()) {
      try {
        await this.pool.query('SELECT outbox_heartbeat($1::uuid[], $2, make_interval(secs => $3))',
                              [ids, token, this.leaseSeconds]);
      } catch (err) {
        if (err.code !== LEASE_LOST) throw err;
        for (const id of ids) this.take(id, 'lost'); // reclaimed by someone else: drop them
      }
    }
  }

  async releaseAll() {
    for (const [token, ids] of this.heldByToken()) {
      try {
        const { rows } = await this.pool.query('SELECT outbox_release($1::uuid[], $2) AS n', [ids, token]);
        if (rows[0].n !== ids.length) throw new Error(`released ${rows[0].n} of ${ids.length}`);
        for (const id of ids) this.take(id, 'released');
      } catch (err) {
        if (err.code !== LEASE_LOST) throw err;
        for (const id of ids) this.take(id, 'lost');
      }
    }
  }

  heldByToken() {
    const groups = new Map();
    for (const [id, { token }] of this.held) {
      if (!groups.has(token)) groups.set(token, []);
      groups.get(token).push(id);
    }
    return groups;
  }
}

// Run as a program: a demo handler that logs each event. HANDLER_MS makes it
// slow; an event whose payload has "fail": "always" fails for good.
if (import.meta.url === `file://${process.argv[1]}`) {
  const types = process.argv.slice(2);
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
  const handlerMs = Number(process.env.HANDLER_MS ?? 0);
  const consumer = new OutboxConsumer(pool, {
    types: types.length ? types : null,
    batchSize: Number(process.env.BATCH_SIZE ?? 10),
    leaseSeconds: Number(process.env.LEASE_SECONDS ?? 30),
    log: (msg) => console.error(msg),
    handler: async (event) => {
      if (handlerMs) await new Promise((resolve) => setTimeout(resolve, handlerMs));
      if (event.payload?.fail === 'always') throw new PermanentError('cannot handle this event');
      console.error(`handled ${event.type} ${event.id} (attempt ${event.attempt})`);
    },
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => consumer.stop());
  if (process.env.CONSUMER_READY_LINE) console.log('ready');
  let status = 0;
  try {
    await consumer.run();
  } catch (err) {
    console.error(err);
    status = 1;
  } finally {
    await pool.end();
  }
  // What happened to every event this consumer claimed (read by the test).
  console.log(JSON.stringify(consumer.ledger));
  process.exit(status);
}
