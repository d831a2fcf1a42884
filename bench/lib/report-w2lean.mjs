// W2lean's section of bench/RESULTS.md (called by report.mjs), and its ratios
// on the console (bench/run.sh): node bench/lib/report-w2lean.mjs results.jsonl
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const names = {
    raw: 'raw SQL floor', outbox: 'outbox, leases (claim, then complete)', xact: 'outbox, transaction claims (claim_xact + complete)',
    pgq: 'PgQ', worker: 'relay (background worker), no-op SQL subscription',
};
const order = ['raw', 'outbox', 'xact', 'pgq', 'worker'];
const goal = { outbox: 0.8, xact: 0.9 };

const median = (xs) => {
    const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');

// Per-round ratios of system a (a consumers) to system b (b consumers).
export function perRound(rows, a, ca, b, cb) {
    const rounds = [...new Set(rows.map((l) => l.round))].sort((x, y) => x - y);
    return rounds.map((r) => {
        const x = rows.find((l) => l.round === r && l.system === a && l.consumers === ca);
        const y = rows.find((l) => l.round === r && l.system === b && l.consumers === cb);
        return x && y ? x.rate / y.rate : NaN;
    }).filter(Number.isFinite);
}
const span = (xs) => (xs.length > 1 ? ` (${ratio(Math.min(...xs))} – ${ratio(Math.max(...xs))})` : '');

// The ratios the targets are about: [label, per-round ratios, goal, above?]
export function leanRatios(rows) {
    const out = [];
    for (const c of [1, 4]) {
        for (const s of ['outbox', 'xact']) {
            out.push([`${s === 'outbox' ? 'leases' : 'transaction claims'} / floor, ${c} consumer${c > 1 ? 's' : ''}`,
                perRound(rows, s, c, 'raw', c), goal[s], `W2 lean ${s === 'outbox' ? 'leases' : 'transaction claims'}, ${c} consumer${c > 1 ? 's' : ''}: ≥ ${goal[s].toFixed(2)}× the raw-SQL floor`]);
        }
    }
    out.push(['relay / PgQ lean, 1 consumer', perRound(rows, 'worker', 1, 'pgq', 1), 1,
        'W2 lean: the relay ahead of PgQ\'s 1-consumer drain (batch 100, PgQ with the lean client)']);
    return out;
}

export function w2leanSection({ by, p, fmt, targets }) {
    const rows = by('W2lean');
    if (!rows.length) return;
    const cmd = (by('W2leancmd')[0] || {}).cmd || '';
    const events = rows[0].events;
    p('### W2 with a lean client (W2lean)');
    p();
    p(`The same drain (${fmt(events)} events, batch ${rows[0].batch}, 1 and 4 consumers) with a lean client instead of`);
    p('node-postgres: `bench/lean/drain.c`, one thread and one libpq connection per consumer, every statement prepared');
    p('before the clock starts, one round trip per statement, text results and no JSON parsing (the no-op handler reads the');
    p('event number from the front of the payload\'s text into a bitmap, so exactly-once is checked on the client as well');
    p('as in the database). Each consumer loops until a claim comes back empty and its queue is empty; the clock runs');
    p('from the consumers\' start until the last one stops. The node loops\' own per-batch cost (parsing 100 payloads,');
    p('promises) is the same for every system and pulls every ratio towards 1; this shows the database\'s.');
    p();
    p('- **raw SQL floor**: W2\'s statement (`DELETE … RETURNING` into the archive, `SKIP LOCKED`), one round trip per batch.');
    p('- **leases**: `outbox_claim(100, NULL, consumer)`, then `outbox_complete(ids, lease_token)`: two round trips, two transactions per batch.');
    p('- **transaction claims**: `BEGIN`, `outbox_claim_xact(100, consumer)`, `outbox_complete(ids, lease_token)`, `COMMIT`: four round trips, one transaction.');
    p('- **PgQ**: W2\'s setup (one queue per consumer, a tick every 100 events by the publisher, pgqd for maintenance); `next_batch`, `get_batch_events`, `finish_batch`: three round trips.');
    p('- **relay**: the background worker to a no-op SQL subscription (`outbox.relay_batch_size = 100` for this workload, so its batches are PgQ\'s size), no client; the clock runs from the subscription until `outbox_events` is empty. One worker per database: 1 consumer only.');
    p('- pgmq is not measured: W2 has no pgmq.');
    p();
    p('```');
    p(cmd);
    p('```');
    p();
    const rounds = [...new Set(rows.map((l) => l.round))];
    for (const c of [1, 4]) {
        const rc = rows.filter((l) => l.consumers === c);
        if (!rc.length) continue;
        p(`#### ${c} consumer${c > 1 ? 's' : ''}, lean client`);
        p();
        p('| system | median drain time | median events/s | speed relative to the floor (per-round range) | relative to PgQ | short batches (median) | runs, all exactly-once |');
        p('|---|---|---|---|---|---|---|');
        for (const s of order) {
            const rs = rc.filter((l) => l.system === s);
            if (!rs.length) continue;
            const vsRaw = perRound(rows, s, c, 'raw', c);
            const vsPgq = perRound(rows, s, c, 'pgq', c);
            p(`| ${names[s] || s} | ${fmt(median(rs.map((l) => l.seconds)), 2)} s | ${fmt(median(rs.map((l) => l.rate)))} | ${s === 'raw' ? '1.00×' : ratio(median(vsRaw)) + span(vsRaw)} | ${s === 'pgq' ? '1.00×' : ratio(median(vsPgq))} | ${s === 'worker' ? '–' : fmt(median(rs.map((l) => l.short_batches)))} | ${rs.length}, ${rs.every((l) => l.ok) ? 'yes' : '**NO**'} |`);
        }
        p();
    }
    p(`Ratios are medians over the ${rounds.length} round${rounds.length > 1 ? 's' : ''} of (events/s) / (the other system's events/s), systems interleaved within each round.`);
    p();
    for (const [, xs, g, target] of leanRatios(rows)) {
        const m = median(xs);
        targets.push([target, `${ratio(m)}${span(xs)}`, Number.isFinite(m) ? (g === 1 ? m > 1 : m >= g) : null]);
    }
}

// Console: the ratios of a results file.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const rows = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
        .filter((l) => l.workload === 'W2lean');
    for (const [label, xs, g] of leanRatios(rows)) {
        const m = median(xs);
        const met = Number.isFinite(m) ? ((g === 1 ? m > 1 : m >= g) ? 'met' : 'missed') : 'not measured';
        console.log(`   ${label}: ${ratio(m)} (rounds: ${xs.map(ratio).join(' ') || '-'}; target ${g === 1 ? '> 1' : '>= ' + g.toFixed(2)}: ${met})`);
    }
}
