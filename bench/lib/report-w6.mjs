// W6's section of bench/RESULTS.md (called by report.mjs), and its ratios on
// the console: node bench/lib/report-w6.mjs results.jsonl
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const median = (xs) => {
    const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ratio = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');
const span = (xs) => (xs.length > 1 ? ` (rounds ${ratio(Math.min(...xs))} – ${ratio(Math.max(...xs))})` : '');
const GOAL = 1.2;

// Per round, the cost on w6_full over the cost on w6_empty: publishing (the
// inverse of the rate) for a synchronous_commit mode, or claim + complete
// (the latency per batch).
export function w6Ratios(by) {
    const pub = by('W6publish');
    const claim = by('W6claim');
    const rounds = [...new Set([...pub, ...claim].map((l) => l.round))].sort((a, b) => a - b);
    const per = (rows, val, inverse) => rounds.map((r) => {
        const e = rows.find((l) => l.round === r && l.db === 'w6_empty');
        const f = rows.find((l) => l.round === r && l.db === 'w6_full');
        if (!e || !f || !(val(e) > 0) || !(val(f) > 0)) return NaN;
        return inverse ? val(e) / val(f) : val(f) / val(e);
    });
    const out = [];
    for (const mode of ['on', 'off']) {
        const rows = pub.filter((l) => l.sync === mode);
        if (rows.length) out.push({ what: `publishing (synchronous_commit = ${mode})`, key: `publish_${mode}`, xs: per(rows, (l) => l.tps, true) });
    }
    if (claim.length) out.push({ what: 'claim (100, lease) + complete', key: 'claim', xs: per(claim, (l) => l.latency_ms, false) });
    return { rounds, out };
}

export function w6Section({ by, p, fmt, targets, mib, picture }) {
    const fill = by('W6fill')[0];
    if (!fill) return;
    const cmd = (by('W6cmd')[0] || {}).cmd || '';
    const sizes = by('W6sizes');
    const sz = (db, when) => sizes.find((l) => l.db === db && l.when === when) || {};
    const full0 = sz('w6_full', 'after the fill');
    const ratioLine = by('W6ratio')[0] || {};
    p('## W6: growth of cost');
    p();
    p(`Does publishing or claiming get dearer when the outbox is big? Two databases of the same cluster, both made like`);
    p(`\`bench\` and with the same archive partitions: **w6_full**, with ${fmt(fill.pending)} events pending and ${fmt(fill.archived)} archived,`);
    p('and **w6_empty**, with nothing pending and an empty archive. The rounds alternate between them (in odd rounds');
    p('w6_empty goes first, in even rounds w6_full), so the machine\'s drift falls on both alike; each ratio is the cost on');
    p('w6_full over the cost on w6_empty in the same round, and the median of the rounds is reported.');
    p();
    p(`- **Fill** (w6_full, untimed): \`INSERT … SELECT\` into \`outbox_events\` and into \`outbox_events_archive\` as the extension's owner,`);
    p('  two sessions at once, rows shaped as `outbox_publish()` writes them: UUIDv7 ids of the publish time, 4 event types, W2\'s payload');
    p(`  (\`bench_payload(n)\`, ~250 bytes of jsonb), an ordering key on half of the events (${fmt(fill.keys)} keys, \`customer-<k>\`), a \`traceparent\``);
    p('  header on a quarter. The pending events were published over the 2 hours before the run; the archived ones completed');
    p(`  evenly from the start of the day ${fill.days} days back to 2 hours ago, half settled by a consumer, half by the relay (with`);
    p('  its `deliveries` record), into day partitions made with the DDL `outbox_archive_maintain()` runs (it makes them days');
    p(`  ahead; it made the next 3 itself): ${fmt(full0.archive_partitions)} partitions with the default one, all within \`outbox.archive_retention\` (7 days).`);
    p(`  Measured on 200,000 events: \`INSERT … SELECT\` about 66,000 rows/s, \`outbox_publish()\` in one statement about 53,000/s; the`);
    p('  first also spreads the publish times (one statement of `outbox_publish()` stamps every event with the same `now()`).');
    p(`  The fill took ${fmt(fill.fill_seconds, 0)} s, then \`VACUUM (ANALYZE)\` of both tables and a checkpoint ${fmt(fill.vacuum_seconds, 0)} s (what autovacuum would`);
    p('  have done on a system running long enough); autovacuum then runs as configured.');
    p(`- **Publishing**: W1's transaction with the event shaped as the fill's (\`bench/sql/w6_publish.sql\`: a business row and \`outbox_publish()\`,`);
    p(`  4 types, a key on half, a header on a quarter), pgbench 4 clients for ${ratioLine.seconds || '?'} s, \`synchronous_commit\` on and off. Cost = 1 / transactions per second.`);
    p('- **Claiming**: `bench/sql/w6_claim.sql`, pgbench 1 client: `outbox_claim(100, NULL, \'w6\')` (a lease), then `outbox_complete(ids,');
    p('  lease_token)`, two transactions per batch, as a lease consumer does. The number of batches is what w6_empty\'s publishing');
    p('  left pending: there the claims drain that freshly published set; on w6_full they take as many batches from the front of');
    p('  its backlog. Cost = latency per batch.');
    p();
    p('```');
    p(cmd);
    p('```');
    p();
    p('| | w6_empty | w6_full |');
    p('|---|---|---|');
    const e0 = sz('w6_empty', 'after the fill');
    const f1 = sz('w6_full', 'after the rounds');
    p(`| events pending (after the fill) | ${fmt(e0.pending)} | ${fmt(full0.pending)} |`);
    p(`| archived (after the fill) | ${fmt(e0.archived)} | ${fmt(full0.archived)} |`);
    p(`| \`outbox_events\`: table with TOAST | ${mib(e0.events_table)} | ${mib(full0.events_table)} |`);
    for (const ix of Object.keys(full0.indexes || {}).sort()) p(`| \`${ix}\` | ${mib((e0.indexes || {})[ix])} | ${mib(full0.indexes[ix])} |`);
    p(`| archive: tables / indexes | ${mib(e0.archive_table)} / ${mib(e0.archive_indexes)} | ${mib(full0.archive_table)} / ${mib(full0.archive_indexes)} |`);
    if (f1.pending !== undefined) p(`| pending after the rounds | ${fmt(sz('w6_empty', 'after the rounds').pending)} | ${fmt(f1.pending)} |`);
    p();
    const { rounds, out } = w6Ratios(by);
    const pub = by('W6publish');
    const claim = by('W6claim');
    const row = (rows, r, db) => rows.find((l) => l.round === r && l.db === db) || {};
    // † : autovacuum was at work on that database's outbox_events at the
    // start or the end of the phase.
    const av = (l) => (l.vacuuming ? ' †' : '');
    p('| round | publish, sync on: tps empty / full | sync off: tps empty / full | claim + complete: ms per batch empty / full (claim + complete) | batches | load |');
    p('|---|---|---|---|---|---|');
    for (const r of rounds) {
        const on = pub.filter((l) => l.sync === 'on'), off = pub.filter((l) => l.sync === 'off');
        const ce = row(claim, r, 'w6_empty'), cf = row(claim, r, 'w6_full');
        const oe = row(on, r, 'w6_empty'), of = row(on, r, 'w6_full'), fe = row(off, r, 'w6_empty'), ff = row(off, r, 'w6_full');
        p(`| ${r} | ${fmt(oe.tps)}${av(oe)} / ${fmt(of.tps)}${av(of)} | ${fmt(fe.tps)}${av(fe)} / ${fmt(ff.tps)}${av(ff)} | ` +
          `${fmt(ce.latency_ms, 2)} (${fmt(ce.claim_ms, 2)} + ${fmt(ce.complete_ms, 2)})${av(ce)} / ${fmt(cf.latency_ms, 2)} (${fmt(cf.claim_ms, 2)} + ${fmt(cf.complete_ms, 2)})${av(cf)} | ${fmt(ce.batches)} | ${ce.load || ''} |`);
    }
    p();
    p('†: autovacuum was at work on that database\'s `outbox_events` when the phase started or ended.');
    p();
    // Per batch or per transaction: WAL, full-page images, buffers.
    const perUnit = (rows, db, n) => {
        const rs = rows.filter((l) => l.db === db);
        const units = rs.reduce((a, l) => a + n(l), 0) || NaN;
        const sum = (k) => rs.reduce((a, l) => a + (l[k] || 0), 0);
        return { wal: sum('wal_bytes') / units, fpi: sum('wal_fpi') / units, bufs: (sum('blks_hit') + sum('blks_read')) / units, read: sum('blks_read') / units, av: sum('autovacuums') };
    };
    const ce = perUnit(claim, 'w6_empty', (l) => l.done), cf = perUnit(claim, 'w6_full', (l) => l.done);
    const pe = perUnit(pub, 'w6_empty', (l) => l.transactions), pf = perUnit(pub, 'w6_full', (l) => l.transactions);
    p('| per unit, all rounds | publish transaction: empty / full | claim + complete batch: empty / full |');
    p('|---|---|---|');
    p(`| WAL bytes | ${fmt(pe.wal)} / ${fmt(pf.wal)} | ${fmt(ce.wal)} / ${fmt(cf.wal)} |`);
    p(`| full-page images | ${fmt(pe.fpi, 2)} / ${fmt(pf.fpi, 2)} | ${fmt(ce.fpi, 2)} / ${fmt(cf.fpi, 2)} |`);
    p(`| buffers (hit + read) in the database | ${fmt(pe.bufs, 1)} / ${fmt(pf.bufs, 1)} | ${fmt(ce.bufs, 1)} / ${fmt(cf.bufs, 1)} |`);
    p(`| of which read from outside shared_buffers | ${fmt(pe.read, 2)} / ${fmt(pf.read, 2)} | ${fmt(ce.read, 1)} / ${fmt(cf.read, 1)} |`);
    p(`| autovacuums of \`outbox_events\` during the phases | ${pe.av} / ${pf.av} | ${ce.av} / ${cf.av} |`);
    p();
    p('| cost full / empty | median | target |');
    p('|---|---|---|');
    for (const { what, xs } of out) {
        const m = median(xs);
        p(`| ${what} | ${ratio(m)}${span(xs.filter(Number.isFinite))} | ≤ ${GOAL.toFixed(1)}× ${Number.isFinite(m) ? (m <= GOAL ? '(met)' : '(**missed**)') : ''} |`);
        targets.push([`W6: ${what} with ${fmt(fill.pending)} pending and ${fmt(fill.archived)} archived ≤ ${GOAL.toFixed(1)}× an empty outbox`,
            `${ratio(m)}${span(xs.filter(Number.isFinite))}`, Number.isFinite(m) ? m <= GOAL : null]);
    }
    p();
    if (ratioLine.load_before) p(`Load average (1, 5, 15 min) before the rounds ${ratioLine.load_before}, after ${ratioLine.load_after}.`);
    p();
    picture('w6-ratios', 'W6: per round, the cost of publishing and of claim + complete on the full outbox over the empty one, with the 1.2× target');
}

// Console: the ratios of a results file.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const { out } = w6Ratios((w) => lines.filter((l) => l.workload === w));
    for (const { what, xs } of out) {
        const m = median(xs);
        console.log(`   ${what}: ${ratio(m)} (rounds: ${xs.map(ratio).join(' ') || '-'}; target <= ${GOAL}: ${Number.isFinite(m) ? (m <= GOAL ? 'met' : 'missed') : 'not measured'})`);
    }
}
