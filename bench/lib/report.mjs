// Turn bench/run.sh's results.jsonl into bench/RESULTS.md (on stdout).
import { readFileSync, existsSync } from 'node:fs';
import { w2leanSection } from './report-w2lean.mjs';
import { w6Section } from './report-w6.mjs';

// One or more results files (a run of a subset, e.g. on another build, can be
// reported with a full one): the first file's machine description is used.
const lines = process.argv.slice(2).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
const runs = lines.filter((l) => l.workload === 'meta');
const by = (w) => lines.filter((l) => l.workload === w);
const one = (w) => by(w)[0] || {};
const median = (xs) => {
    const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');
const mib = (b) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(1)} MiB` : 'n/a');
const verdict = (met) => (met === null ? '**not measured**' : met ? '**met**' : '**missed**');

// The pictures bench/lib/plots.sh drew into bench/plots/ (next to this
// report), shown where they exist; each says in its corner when its series
// were measured.
const picture = (name, alt) => {
    if (!existsSync(new URL(`../plots/${name}.png`, import.meta.url))) return;
    p(`![${alt}](plots/${name}.png)`);
    p();
};
const shown = new Set();
const pictureOnce = (name, alt) => { if (!shown.has(name)) { shown.add(name); picture(name, alt); } };

const meta = one('meta');
const settings = one('settings').settings || {};
const out = [];
const p = (s = '') => out.push(s);
const targets = [];

p('# outbox benchmark results');
p();
if (runs.length > 1) {
    p('Written by `bash bench/run.sh` in ' + runs.length + ' runs: ' + runs.map((r) => `${r.date} on commit ${r.commit} (${r.workloads || 'all workloads'})`).join('; ') + '. Do not edit by hand: run it again.');
} else {
    p(`Written by \`bash bench/run.sh\` on ${meta.date} (commit ${meta.commit}). Do not edit by hand: run it again.`);
}
p();
p('**Read these numbers as ratios.** The machine is a shared virtual machine with 2 cores, on which other jobs');
p('(builds, test suites) ran at the same time. Absolute rates move from one run to the next; every comparison');
p('below was measured side by side in the same run, interleaved (A B C, A B C, ...), and is reported as the');
p('median of the per-round ratios.');
p();
p('## Machine and software');
p();
p('| | |');
p('|---|---|');
p(`| CPU | ${meta.cpu} (${meta.cores} cores, shared), ${meta.mem_gib} GiB memory |`);
p(`| OS | ${meta.os}, kernel ${meta.kernel} |`);
p(`| PostgreSQL | ${meta.postgres} |`);
p(`| PgQ | ${meta.pgq ? `extension ${meta.pgq}, pgqd ${meta.pgqd}` : 'not measured (see Skipped)'} |`);
p(`| pg-boss | ${meta.pgboss || 'not measured (see Skipped)'} |`);
p(`| graphile-worker | ${meta.graphile || 'not measured (see Skipped)'} |`);
p(`| node | ${meta.node} (node-postgres drives every queue) |`);
p();
p('The pictures are drawn by `bench/lib/plots.sh` (gnuplot) from the raw series the run keeps in [`data/`](data/)');
p('(per-event latencies, delivered counts over time, table sizes; at most 10,000 points each); each names, in its');
p('lower right corner, when its series were measured.');
p();
p('PostgreSQL settings of the throwaway cluster (everything else is the default):');
p();
p('| setting | value |');
p('|---|---|');
for (const [k, v] of Object.entries(settings).sort()) p(`| ${k} | ${v} |`);
p();

// ---------------------------------------------------------------- W1
const w1 = by('W1');
if (w1.length) {
    p('## W1: publish overhead');
    p();
    p('pgbench, 4 clients, prepared statements. Each transaction inserts one business row (`orders`) and');
    p('then either publishes one event with `outbox_publish()` (**outbox**), inserts the same event into a bare');
    p('table of the same shape with a plain `INSERT` (**plain**), or does nothing more (**business row only**).');
    p('Tables are truncated and a checkpoint taken before each run.');
    p();
    p('```');
    p(one('W1cmd').cmd || '');
    p('```');
    p();
    p('| synchronous_commit | outbox tps | plain INSERT tps | business row only tps | outbox cost vs plain INSERT (per-round range) | outbox cost vs business row only | rounds |');
    p('|---|---|---|---|---|---|---|');
    const w1ratios = {};
    for (const sync of ['on', 'off']) {
        const rows = w1.filter((l) => l.sync === sync);
        if (!rows.length) continue;
        const tps = (v) => median(rows.filter((l) => l.variant === v).map((l) => l.tps));
        const rounds = [...new Set(rows.map((l) => l.round))];
        const per = (v) => rounds.map((r) => {
            const o = rows.find((l) => l.round === r && l.variant === 'outbox');
            const x = rows.find((l) => l.round === r && l.variant === v);
            return o && x ? x.tps / o.tps : NaN;
        });
        const vsPlain = median(per('plain'));
        const vsBiz = median(per('business'));
        w1ratios[sync] = vsPlain;
        const pr = per('plain').filter(Number.isFinite);
        p(`| ${sync} | ${fmt(tps('outbox'))} | ${fmt(tps('plain'))} | ${fmt(tps('business'))} | ${ratio(vsPlain)} (${ratio(Math.min(...pr))} – ${ratio(Math.max(...pr))}) | ${ratio(vsBiz)} | ${rounds.length} |`);
    }
    p();
    p('"Cost" is time per transaction relative to the other variant (its tps divided by the outbox\'s): 1.05× means');
    p('a transaction that publishes takes 5 % longer. With `synchronous_commit = on` the WAL flush at commit');
    p('dominates every variant; `off` shows the CPU cost of publishing without it. When the per-round range spans');
    p('more than the 10 % the target is about, this run cannot resolve it: the other jobs on the machine moved');
    p('throughput by more than that between consecutive 8-second runs.');
    p();
    const r = w1ratios.on ?? w1ratios.off;
    targets.push(['W1: publish ≤ 1.10× the plain-INSERT transaction',
        Object.entries(w1ratios).map(([k, v]) => `${ratio(v)} (synchronous_commit=${k})`).join(', '),
        Number.isFinite(r) ? Object.values(w1ratios).every((v) => v <= 1.10) : null]);
}

// ---------------------------------------------------------------- W2
const w2 = by('W2');
if (w2.length) {
    const names = { outbox: 'outbox, leases (claim/complete)', xact: 'outbox, transaction claims (claim_xact/complete)', raw: 'raw SQL floor', pgq: 'PgQ', pgboss: 'pg-boss', graphile: 'graphile-worker' };
    const events = w2[0].events;
    p('## W2: drain');
    p();
    p(`${fmt(events)} events (the ~200-byte JSON payload) are published, then drained by 1 and by 4 consumers;`);
    p('the clock runs from the consumers\' start until the last event was handled. Every consumer is a loop in');
    p('one node process with its own connection (node-postgres) and a no-op handler that records `payload.n`;');
    p('each run checks that every event was delivered exactly once and that the queue is empty afterwards.');
    p();
    p('- **outbox**: `outbox_claim(100)`, handle, `outbox_complete(ids, lease_token)` (moves the rows to the archive): two round trips per batch, the handler runs outside any transaction under a lease.');
    p('- **outbox, transaction claims**: `BEGIN`, `outbox_claim_xact(100)`, handle, `outbox_complete(ids, lease_token)`, `COMMIT`: four round trips, one transaction per batch; the events are held by the transaction\'s row locks, nothing is written to claim them (the consumer whose effects are writes in the same database).');
    p('- **raw SQL floor**: one statement per batch, `WITH c AS (SELECT id ... ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED), d AS (DELETE ... RETURNING *) INSERT INTO archive SELECT ... RETURNING`: no lease, no retry, the event is gone once the statement commits.');
    p('- **PgQ**: `pgq.next_batch` / `pgq.get_batch_events` / `pgq.finish_batch`. The publisher ticks its queue every 100 events (`pgq.ticker(queue)`), so batches hold 100 events like everyone else\'s; pgqd runs all along for maintenance (its own ticker slowed down, since two tickers on one queue can produce overlapping batches). PgQ hands every batch to every consumer of a queue, and this package has no cooperative consumers (pgq_coop), so 4 consumers means 4 queues, one per consumer, with the events spread over them.');
    p('- **pg-boss**: `boss.insert()` to publish, then a tight `boss.fetch(queue, {batchSize: 100})` / `boss.complete(queue, ids)` loop per consumer, its public API. (Its `work()` loop waits at least `pollingIntervalSeconds` (0.5 s minimum) between fetches even after a full batch, which would measure that timer, not the queue.)');
    p('- **graphile-worker**: `graphile_worker.add_job()` to publish, its runner `run({concurrency: C, taskList})` to consume (one job at a time per concurrency slot: that is how it works).' +
      (meta.w2_graphile_events && meta.w2_graphile_events !== events ? ` It drains ${fmt(meta.w2_graphile_events)} events per run, not ${fmt(events)}: at a few hundred events/s, ${fmt(events)} would take several minutes per run on this machine (set W2_GRAPHILE_EVENTS=${events} for the full count). Its per-event cost does not fall with a smaller backlog, so this does not penalise it.` : ''));
    p();
    p('```');
    p(one('W2cmd').cmd || '');
    p('```');
    p();
    const systems = [...new Set(w2.map((l) => l.system))];
    // The outbox's two ways of consuming, each compared with every system.
    const bases = ['outbox', 'xact'].filter((b) => systems.includes(b));
    const baseNames = { outbox: 'lease (claim/complete)', xact: 'transaction (claim_xact/complete)' };
    for (const c of [1, 4]) {
        const rows = w2.filter((l) => l.consumers === c);
        if (!rows.length) continue;
        const rounds = [...new Set(rows.map((l) => l.round))];
        p(`### ${c} consumer${c > 1 ? 's' : ''}`);
        p();
        p(`| system | events per run | median drain time | median events/s | ${bases.map((b) => `outbox ${baseNames[b]} speed relative to it`).join(' | ')} | runs, all exactly-once |`);
        p(`|---|---|---|---|${bases.map(() => '---|').join('')}---|`);
        const rel = Object.fromEntries(bases.map((b) => [b, {}]));
        for (const s of systems) {
            const rs = rows.filter((l) => l.system === s);
            if (!rs.length) continue;
            for (const b of bases) {
                const per = rounds.map((r) => {
                    const o = rows.find((l) => l.round === r && l.system === b);
                    const x = rows.find((l) => l.round === r && l.system === s);
                    return o && x ? o.rate / x.rate : NaN;
                });
                rel[b][s] = median(per);
            }
            p(`| ${names[s] || s} | ${fmt(rs[0].events)} | ${fmt(median(rs.map((l) => l.seconds)), 2)} s | ${fmt(median(rs.map((l) => l.rate)))} | ${bases.map((b) => (s === b ? '1.00×' : ratio(rel[b][s]))).join(' | ')} | ${rs.length}, ${rs.every((l) => l.ok) ? 'yes' : '**NO**'} |`);
        }
        p();
        const peers = systems.filter((s) => !['outbox', 'xact', 'raw'].includes(s));
        for (const b of bases) {
            const who = `W2 ${b === 'xact' ? 'transaction claims' : 'leases'}, ${c} consumer${c > 1 ? 's' : ''}`;
            targets.push([`${who}: ≥ 0.80× the raw-SQL floor`, ratio(rel[b].raw), Number.isFinite(rel[b].raw) ? rel[b].raw >= 0.8 : null]);
            targets.push([`${who}: ahead of every peer`,
                peers.map((s) => `${ratio(rel[b][s])} ${names[s]}`).join(', ') || 'no peer measured',
                peers.length ? peers.every((s) => rel[b][s] > 1) : null]);
        }
    }
    p('"outbox … speed relative to it" is the median over rounds of (outbox events/s) / (that system\'s events/s) in the same round: above 1 the outbox drained faster.');
    p();
}

// W2 with a lean client (libpq): bench/lib/report-w2lean.mjs
if (by('W2lean').length) {
    if (!w2.length) { p('## W2: drain'); p(); }
    w2leanSection({ by, p, fmt, targets });
}

// ---------------------------------------------------------------- W2 worker, W3
const w2w = by('W2worker');
const w3 = by('W3');
const skips = by('skip');
p('## The background worker: W2 drain and W3 latency');
p();
if (!w2w.length && !w3.length) {
    for (const s of skips.filter((s) => /^W2 worker|^W3/.test(s.what))) p(`- Not measured: ${s.what}.`);
    p();
    targets.push(['W3: p99 ≤ 10 ms from commit to handler', 'n/a', null]);
} else {
    if (w2w.length) {
        const events = w2w[0].events;
        p('### W2 by the background worker (relay)');
        p();
        p(`${fmt(events)} events published while no subscription matches them, then the subscription (\`bench.*\`, a`);
        p('no-op SQL handler `bench_noop(outbox_events)`) is made; the clock runs until `outbox_events` is empty.');
        p('The relay is one worker per database; it is compared, interleaved in the same rounds, with the raw-SQL');
        p('floor and the SQL claim/complete API, each with 1 consumer. Exactly-once is checked on the archive');
        p('(every event archived once, the relay\'s own delivered counter equal to the number of events).');
        p();
        p('```');
        p(one('W2workercmd').cmd || '');
        p('```');
        p();
        const rounds = [...new Set(w2w.map((l) => l.round))];
        const rel = (a, b) => median(rounds.map((r) => {
            const x = w2w.find((l) => l.round === r && l.system === a);
            const y = w2w.find((l) => l.round === r && l.system === b);
            return x && y ? x.rate / y.rate : NaN;
        }));
        p('| system | median drain time | median events/s | relay speed relative to it | runs, all exactly-once |');
        p('|---|---|---|---|---|');
        const names = { worker: 'relay, no-op subscription', outbox: 'outbox claim/complete, 1 consumer', raw: 'raw SQL floor, 1 consumer' };
        for (const sys of ['worker', 'outbox', 'raw']) {
            const rs = w2w.filter((l) => l.system === sys);
            if (!rs.length) continue;
            p(`| ${names[sys]} | ${fmt(median(rs.map((l) => l.seconds)), 2)} s | ${fmt(median(rs.map((l) => l.rate)))} | ${sys === 'worker' ? '1.00×' : ratio(rel('worker', sys))} | ${rs.length}, ${rs.every((l) => l.ok) ? 'yes' : '**NO**'} |`);
        }
        p();
        picture('throughput-drain', 'W2 worker: events delivered per second over the drain, the relay beside claim/complete and the raw-SQL floor');
        const vsRaw = rel('worker', 'raw');
        targets.push(['W2 by the relay: ≥ 0.80× the raw-SQL floor (1 consumer)', ratio(vsRaw), Number.isFinite(vsRaw) ? vsRaw >= 0.8 : null]);
        const peers1 = by('W2').filter((l) => l.consumers === 1 && ['pgq', 'pgboss', 'graphile'].includes(l.system));
        if (peers1.length) {
            const wr = median(w2w.filter((l) => l.system === 'worker').map((l) => l.rate));
            const peerNames = { pgq: 'PgQ', pgboss: 'pg-boss', graphile: 'graphile-worker' };
            const cmp = ['pgq', 'pgboss', 'graphile'].filter((x) => peers1.some((l) => l.system === x))
                .map((x) => [x, wr / median(peers1.filter((l) => l.system === x).map((l) => l.rate))]);
            p(`Against the peers' 1-consumer medians of W2 (same run, not interleaved with the relay): ${cmp.map(([x, v]) => `${ratio(v)} ${peerNames[x]}`).join(', ')}.`);
            p();
            targets.push(['W2 by the relay: ahead of every peer (1 consumer)', cmp.map(([x, v]) => `${ratio(v)} ${peerNames[x]}`).join(', '), cmp.every(([, v]) => v > 1)]);
        }
    }
    if (w3.length) {
        const l = w3[w3.length - 1];
        p('### W3: latency from commit to handler');
        p();
        p(`pgbench (4 clients, \`-R ${l.rate}\`) runs for ${l.seconds} s, each transaction inserting an order and publishing one event`);
        p('(`synchronous_commit = on`); the relay delivers to a SQL subscription whose handler inserts `(n, clock_timestamp())`.');
        p('Latency = handler clock − commit time of the publishing transaction (`track_commit_timestamp`, read from the');
        p('order row\'s xmin). The backlog (rows in `outbox_events`) is sampled every 0.2 s.');
        p();
        p('```');
        p(one('W3cmd').cmd || '');
        p('```');
        p();
        p('| events published | handled (distinct) | p50 | p99 | max | largest backlog seen |');
        p('|---|---|---|---|---|---|');
        p(`| ${fmt(l.published)} (${fmt(l.published / l.seconds)}/s achieved) | ${fmt(l.handled)} (${fmt(l.distinct_handled)}) | ${fmt(l.p50_ms, 2)} ms | ${fmt(l.p99_ms, 2)} ms | ${fmt(l.max_ms, 2)} ms | ${fmt(l.max_backlog)} |`);
        p();
        pictureOnce('latency', 'Latency from commit to delivery: the share of events delivered within a latency (W3 to a SQL handler, W8 to a webhook receiver), p50 and p99 marked');
        targets.push(['W3: p99 ≤ 10 ms from commit to handler', `${fmt(l.p99_ms, 2)} ms`, l.p99_ms <= 10]);
    }
}

// ---------------------------------------------------------------- W8
const w8l = by('W8latency');
const w8t = by('W8throughput');
if (w8l.length || w8t.length) {
    p('## W8: webhooks');
    p();
    p('The sink worker delivers to a local Standard Webhooks receiver (`test/webhook/receiver.mjs`, which checks every');
    p('signature). Latency: pgbench publishes at a fixed rate (as in W3) and the latency is the receiver\'s clock minus the');
    p('commit time of the order row. Throughput: a backlog published with the workers off, then delivered over the');
    p('endpoint\'s `max_in_flight` connections, and the same backlog to a no-op SQL handler for comparison; the clock runs');
    p('until `outbox_events` is empty.');
    p();
    p('```');
    p(one('W8cmd').cmd || '');
    p('```');
    p();
    if (w8l.length) {
        const l = w8l[w8l.length - 1];
        p('| events published | received once (distinct) | bad signatures | p50 | p99 | max |');
        p('|---|---|---|---|---|---|');
        p(`| ${fmt(l.published)} (${fmt(l.published / l.seconds)}/s achieved of ${fmt(l.rate)}/s, ${l.seconds} s) | ${fmt(l.received)} (${fmt(l.distinct_received)}) | ${fmt(l.bad_signatures)} | ${fmt(l.p50_ms, 2)} ms | ${fmt(l.p99_ms, 2)} ms | ${fmt(l.max_ms, 2)} ms |`);
        p();
        pictureOnce('latency', 'Latency from commit to delivery: the share of events delivered within a latency (W3 to a SQL handler, W8 to a webhook receiver), p50 and p99 marked');
    }
    if (w8t.length) {
        const tn = { webhook: 'webhooks to the receiver', sql: 'the same backlog to a SQL handler' };
        p(`| backlog delivered | events | connections | time | events/s |`);
        p('|---|---|---|---|---|');
        for (const l of w8t) p(`| ${tn[l.target] || l.target} | ${fmt(l.events)} | ${l.target === 'webhook' ? l.connections : '–'} | ${fmt(l.seconds, 2)} s | ${fmt(l.rate)} |`);
        p();
        picture('throughput-webhooks', 'W8: a backlog delivered, events per second over time, to the webhook receiver and to a SQL handler');
    }
}

// ---------------------------------------------------------------- W9
const w9l = by('W9latency');
const w9t = by('W9throughput');
if (w9l.length || w9t.length) {
    p('## W9: Kafka');
    p();
    p('The sink worker produces to librdkafka\'s mock cluster (`test/kafka/mockcluster.c`: 3 brokers, a real Kafka');
    p('protocol server over TCP on this machine; an idempotent producer, `acks=all`). Latency: pgbench publishes at a');
    p('fixed rate (as in W3); the latency is from the commit time of the order row to the delivery\'s `completed_on`,');
    p('the statement that settled it once the delivery report (the brokers\' acknowledgement) came. Throughput: a backlog');
    p('(`keys` ordering keys; 0: none) published with the workers off, then delivered to the mock cluster, and the same backlog');
    p('to a no-op SQL handler in the same run; the clock runs until `outbox_events` is empty. The two drains run in rounds,');
    p('their order swapped every round; each round gives the ratio of its two rates, and the result is the median of the');
    p('rounds\' ratios (the machine\'s noise moves one drain by up to 1.5× from one minute to the next).');
    p();
    p('```');
    p(one('W9cmd').cmd || '');
    p('```');
    p();
    if (w9l.length) {
        const l = w9l[w9l.length - 1];
        p('| events published | acknowledged | p50 | p99 | max |');
        p('|---|---|---|---|---|');
        p(`| ${fmt(l.published)} (${fmt(l.published / l.seconds)}/s achieved of ${fmt(l.rate)}/s, ${l.seconds} s) | ${fmt(l.events)} | ${fmt(l.p50_ms, 2)} ms | ${fmt(l.p99_ms, 2)} ms | ${fmt(l.max_ms, 2)} ms |`);
        p();
        targets.push(['W9: p99 ≤ 20 ms from commit to broker acknowledgement at 1,000 events/s', `${fmt(l.p99_ms, 2)} ms`, l.p99_ms <= 20]);
    }
    if (w9t.length) {
        const tn = { kafka: 'to the Kafka target (mock cluster)', sql: 'the same backlog to a SQL handler' };
        p(`| round | backlog delivered | events | time | events/s |`);
        p('|---|---|---|---|---|');
        for (const l of w9t) p(`| ${l.round || 1} | ${tn[l.target] || l.target} | ${fmt(l.events)} | ${fmt(l.seconds, 2)} s | ${fmt(l.rate)} |`);
        p();
        const r = one('W9ratio');
        if (r.ratio !== undefined) {
            const range = r.min !== undefined ? ` (rounds ${fmt(r.min, 2)}× – ${fmt(r.max, 2)}×)` : '';
            p(`Kafka drain / SQL-handler drain: **${fmt(r.ratio, 2)}×**, the median of ${r.rounds || 1} round(s)${range}.`);
            p();
            targets.push(['W9: Kafka drain ≥ 0.8× the SQL-handler drain', `${fmt(r.ratio, 2)}×${range}`, r.ratio >= 0.8]);
        }
        picture('throughput-kafka', 'W9: a backlog delivered, events per second over time, to the Kafka mock cluster and to a SQL handler (last round)');
    }
}

// ---------------------------------------------------------------- W4
const w4s = by('W4sample');
const w4 = one('W4');
if (w4s.length) {
    p('## W4: growth under sustained load');
    p();
    p(`pgbench publishes ${fmt(w4.events)} events (one business row and one event per transaction, 2 clients, rate-limited,`);
    p('`synchronous_commit = off` for this workload only: it is about table growth, and with a WAL flush per commit 2 clients');
    p('cannot reach the rate here)');
    p('while 2 consumers claim and complete them; every few seconds the sizes of `outbox_events` (table with');
    p('TOAST, and indexes), of the archive partitions, and the dead tuples of `outbox_events` are sampled.');
    p('Autovacuum runs with the table\'s own settings (scale factor 0.01, no cost delay). The archive grows by');
    p('design until `outbox_archive_maintain()` drops partitions past retention (days): it is reported, not judged.');
    p();
    p('```');
    p(one('W4cmd').cmd || '');
    p('```');
    p();
    const total = (s) => s.outbox_table + s.outbox_indexes;
    const t = w4s[w4s.length - 1].t;
    const pick = [0.1, 0.25, 0.5, 0.75, 1].map((f) => w4s.find((s) => s.t >= f * t) || w4s[w4s.length - 1]);
    p('| time | published | delivered | outbox table | outbox indexes | dead tuples | autovacuums | archive (table + indexes) |');
    p('|---|---|---|---|---|---|---|---|');
    for (const s of [...new Set(pick)]) p(`| ${s.t} s | ${fmt(s.published)} | ${fmt(s.delivered)} | ${mib(s.outbox_table)} | ${mib(s.outbox_indexes)} | ${fmt(s.dead_tuples)} | ${s.autovacuums} | ${mib(s.archive_table + s.archive_indexes)} |`);
    p();
    const firstHalf = w4s.filter((s) => s.t <= t / 2 && s.t >= t * 0.1);
    const secondHalf = w4s.filter((s) => s.t > t / 2);
    const max1 = Math.max(...firstHalf.map(total));
    const max2 = Math.max(...secondHalf.map(total));
    const flat = max2 <= 1.1 * max1 + 1048576;
    const last = w4s[w4s.length - 1];
    p(`Largest \`outbox_events\` (table + indexes) in the first half of the run (after the first 10 %): ${mib(max1)};`);
    p(`in the second half: ${mib(max2)}. Flat means the second is at most 1.1× the first plus 1 MiB: ${flat ? 'it is' : '**it is not**'}.`);
    const idx1 = Math.max(...firstHalf.map((s) => s.outbox_indexes));
    const idx2 = Math.max(...secondHalf.map((s) => s.outbox_indexes));
    p(`The indexes alone (they do not shrink) reached ${mib(idx1)} in the first half and ${mib(idx2)} in the second${idx2 > 1.1 * idx1 ? ': **still growing**, more slowly; a longer run would tell whether they level off' : ''}.`);
    p(`Most dead tuples seen: ${fmt(Math.max(...w4s.map((s) => s.dead_tuples)))}; autovacuum processed \`outbox_events\` ${last.autovacuums} times. Archive: ${fmt((last.archive_table + last.archive_indexes) / Math.max(1, last.delivered))} bytes per event.`);
    p('The plateau is set by how often autovacuum comes round (`autovacuum_naptime`, 1 min by default): the');
    p('table holds about one naptime\'s worth of dead rows. A shorter naptime lowers it.');
    p(`Delivery: ${fmt(w4.delivered)}/${fmt(w4.events)} events, ${w4.duplicates} duplicates, in ${fmt(w4.seconds, 1)} s; ${w4.db_check}.`);
    p();
    picture('w4-sizes', 'W4: sizes of outbox_events, its indexes and the archive, dead tuples and autovacuums over the sustained run; events published and delivered per second');
    targets.push(['W4: outbox table size flat under sustained load', `${mib(max1)} → ${mib(max2)} over ${fmt(w4.events)} events`, flat]);
}

// ---------------------------------------------------------------- W6
// Growth of cost: bench/lib/report-w6.mjs
w6Section({ by, p, fmt, targets, mib, picture });

// ---------------------------------------------------------------- W5
const w5c = by('W5capacity');
const w5l = by('W5latency');
if (w5c.length || w5l.length) {
    p('## W5: capacity');
    p();
    p(`pgbench runs unthrottled with ${(w5c[0] || w5l[0]).clients} clients (the W3 script: one order and one event per transaction) while the relay`);
    p('delivers to a SQL subscription whose handler inserts a row, for `synchronous_commit` on and off: the commit rate is');
    p('what the server sustains with the relay running beside it. The backlog (rows in `outbox_events`) and the relay\'s');
    p('delivered counter are sampled every 0.5 s. **Bounded** means: at the end of the run less than one second of commits');
    p('waits, and the least-squares slope of the backlog over the second half of the run is under 1 % of the commit rate.');
    p('Then pgbench runs at 80 % of that rate (`-R`) and the latency is measured as in W3 (handler clock − commit time).');
    p();
    p('```');
    p(one('W5cmd').cmd || '');
    p('```');
    p();
    if (w5c.length) {
        p('| synchronous_commit | commits/s (capacity) | events published | handled once | backlog: largest | at the end | slope, 2nd half | emptied after | bounded | relay CPU (waiting to run) |');
        p('|---|---|---|---|---|---|---|---|---|---|');
        const sched = (l) => (l.relay_cpu_pct === undefined ? 'n/a' : `${fmt(l.relay_cpu_pct, 1)} % (${fmt(l.relay_runqueue_wait_pct, 1)} %)`);
        for (const l of w5c) p(`| ${l.sync} | ${fmt(l.tps)} | ${fmt(l.published)} | ${fmt(l.distinct_handled)} | ${fmt(l.max_backlog)} | ${fmt(l.end_backlog)} | ${fmt(l.slope_per_s, 1)}/s | ${fmt(l.drain_after_s, 2)} s | ${l.bounded ? 'yes' : '**no**'} | ${sched(l)} |`);
        p();
        p('"Relay CPU": the relay\'s CPU time over the run as a share of one core (`/proc/PID/schedstat`); in brackets the time it');
        p('was ready to run but waited for a core (the run-queue wait), same unit.');
        p();
        picture('w5-backlog', 'W5: the outbox backlog over the unthrottled run, and events delivered per second, synchronous_commit on and off');
        targets.push(['W5: the relay keeps up with the commit capacity (backlog bounded)',
            w5c.map((l) => `${fmt(l.tps)} commits/s, backlog max ${fmt(l.max_backlog)}, ${fmt(l.end_backlog)} at the end (synchronous_commit=${l.sync})`).join('; '),
            w5c.every((l) => l.bounded)]);
    }
    if (w5l.length) {
        p('| synchronous_commit | rate (80 % of capacity) | events published (achieved) | handled (distinct) | p50 | p99 | max | largest backlog seen | relay CPU (waiting to run) |');
        p('|---|---|---|---|---|---|---|---|---|');
        const sched = (l) => (l.relay_cpu_pct === undefined ? 'n/a' : `${fmt(l.relay_cpu_pct, 1)} % (${fmt(l.relay_runqueue_wait_pct, 1)} %)`);
        for (const l of w5l) p(`| ${l.sync} | ${fmt(l.rate)}/s | ${fmt(l.published)} (${fmt(l.published / l.seconds)}/s) | ${fmt(l.handled)} (${fmt(l.distinct_handled)}) | ${fmt(l.p50_ms, 2)} ms | ${fmt(l.p99_ms, 2)} ms | ${fmt(l.max_ms, 2)} ms | ${fmt(l.max_backlog)} | ${sched(l)} |`);
        p();
        picture('w5-latency', 'W5: commit to handler latency at 80 % of the capacity, synchronous_commit on and off');
        targets.push(['W5: p99 ≤ 10 ms from commit to handler at 80 % of capacity',
            w5l.map((l) => `${fmt(l.p99_ms, 2)} ms at ${fmt(l.rate)}/s (synchronous_commit=${l.sync})`).join(', '),
            w5l.every((l) => l.p99_ms <= 10)]);
    }
}

// ---------------------------------------------------------------- W7
const w7 = by('W7');
if (w7.length) {
    const many = w7.filter((l) => l.phase === 'many');
    const onedb = w7.filter((l) => l.phase === 'one');
    const n = (many[0] || w7[0]).databases;
    const med = (rs, k) => median(rs.map((l) => l[k]));
    p('## W7: many databases');
    p();
    p(`${n} databases, copies of one template (\`CREATE EXTENSION outbox\`, a SQL subscription whose handler inserts a row), are`);
    p('served by one configuration (`outbox.databases` lists them all); in the same run, interleaved, round by round, the same');
    p('measurements with only the first of them served (a reload switches between the two). Per phase: an event published');
    p('into every served database must be handled there (each relay delivers); then, idle, the CPU time of every `outbox`');
    p('worker (`backend_type` `outbox launcher`, `outbox relay`; `/proc/PID/schedstat`, and utime + stime of `/proc/PID/stat`');
    p('as a cross-check) over the idle period, as a share of one core; the memory of each relay (`/proc/PID/smaps_rollup`:');
    p('PSS, which counts the shared memory it touched divided among the processes sharing it, and private dirty, the memory');
    p('it alone wrote); then single events published into a few of the databases at a low rate, one pgbench client per');
    p('database (in the one-database phase as many clients, all into that one), latency as in W3.');
    p();
    p('```');
    p(one('W7cmd').cmd || '');
    p('```');
    p();
    p('| databases served | round | relays running | delivering | idle CPU, all outbox workers (% of one core) | per relay | relay PSS | relay private dirty | relay RSS | launcher PSS | latency: events | p50 | p99 | max |');
    p('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const l of w7) p(`| ${l.served} | ${l.round} | ${l.relays} | ${l.delivering} | ${fmt(l.idle_cpu_pct, 3)} % (ticks: ${fmt(l.idle_cpu_pct_ticks, 2)} %) | ${fmt(l.idle_cpu_pct / Math.max(1, l.relays), 4)} % | ${fmt(l.relay_pss_kib)} kB | ${fmt(l.relay_private_dirty_kib)} kB | ${fmt(l.relay_rss_kib)} kB | ${fmt(l.launcher_pss_kib)} kB | ${fmt(l.events)} of ${fmt(l.published)} | ${fmt(l.p50_ms, 2)} ms | ${fmt(l.p99_ms, 2)} ms | ${fmt(l.max_ms, 2)} ms |`);
    p();
    if (many.length && onedb.length) {
        const cpu = med(many, 'idle_cpu_pct');
        const r50 = median(many.map((l) => { const o = onedb.find((x) => x.round === l.round); return o ? l.p50_ms / o.p50_ms : NaN; }));
        const r99 = median(many.map((l) => { const o = onedb.find((x) => x.round === l.round); return o ? l.p99_ms / o.p99_ms : NaN; }));
        p(`Medians over rounds: idle, the ${n} relays and the launcher took ${fmt(cpu, 3)} % of one core (1 database: ${fmt(med(onedb, 'idle_cpu_pct'), 3)} %);`);
        p(`a relay's PSS ${fmt(med(many, 'relay_pss_kib'))} kB, private dirty ${fmt(med(many, 'relay_private_dirty_kib'))} kB. Latency with ${n} databases served against 1, per round: p50 ${ratio(r50)}, p99 ${ratio(r99)}`);
        p(`(p99 ${fmt(med(many, 'p99_ms'), 2)} ms against ${fmt(med(onedb, 'p99_ms'), 2)} ms). The cluster ran with \`max_worker_processes = ${many[0].max_worker_processes}\` (1 launcher + ${n} relays + core's logical replication launcher) and every relay started.`);
        p();
        picture('w7-latency', `W7: commit to handler latency of single events, ${n} databases served against 1`);
        targets.push([`W7: ${n} idle relays and the launcher < 1 % of one core`, `${fmt(cpu, 3)} %`, cpu < 1]);
        // Unchanged: the p99 with N databases within 1.25x (+0.5 ms) of 1 database's, same round.
        const same = many.every((l) => { const o = onedb.find((x) => x.round === l.round); return o && l.p99_ms <= 1.25 * o.p99_ms + 0.5; });
        targets.push([`W7: wake-on-commit latency with ${n} databases unchanged (p99 within 1.25× + 0.5 ms of 1 database's)`,
            `p99 ${fmt(med(many, 'p99_ms'), 2)} ms against ${fmt(med(onedb, 'p99_ms'), 2)} ms (${ratio(r99)}), p50 ${fmt(med(many, 'p50_ms'), 2)} against ${fmt(med(onedb, 'p50_ms'), 2)} ms`, same]);
        targets.push([`W7: every one of the ${n} relays delivers`, `${Math.min(...many.map((l) => l.delivering))} of ${n}`, many.every((l) => l.delivering === n)]);
    }
}

// ---------------------------------------------------------------- summary
const head = [];
head.push('## Targets');
head.push('');
head.push('| target | measured | |');
head.push('|---|---|---|');
for (const [what, got, met] of targets) head.push(`| ${what} | ${got} | ${verdict(met)} |`);
head.push('');
head.push('Where a target is missed, [PROFILING.md](PROFILING.md) shows where the time goes and what to change.');
head.push('');
const at = out.findIndex((l) => l === '## Machine and software');
out.splice(at, 0, ...head);

if (skips.length) {
    p('## Skipped');
    p();
    for (const s of skips) p(`- ${s.what}`);
    p();
}
process.stdout.write(out.join('\n'));
