#!/usr/bin/env node
// Self-test of test/webhook/receiver.mjs (a few seconds, loopback only).
//
//   node test/webhook/selftest.mjs
//
// Prints "ok N - ..." / "not ok N - ..." and exits non-zero on any failure.
// Every wait has a timeout; a watchdog ends the whole run after 30 s.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sign, verify, verifyReason, prng } from './receiver.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const receiverPath = path.join(here, 'receiver.mjs');
const started = performance.now();
let n = 0, failed = 0;
function check(cond, what, detail) {
    n++;
    if (cond) console.log(`ok ${n} - ${what}`);
    else { failed++; console.log(`not ok ${n} - ${what}`); if (detail !== undefined) console.log(`# ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`); }
    return cond;
}
const children = new Set();
const watchdog = setTimeout(() => {
    console.log(`not ok ${n + 1} - the self-test finished within 30 s`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
}, 30000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'receiver-selftest-'));

// ---------------------------------------------------------------- signature code, no server
const V = { secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', id: 'msg_p5jXN8AQM9LWM0D4loKWxJek', ts: '1614265330',
    body: '{"test": 2432232314}', sig: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
check(sign(V.secret, V.id, V.ts, V.body) === V.sig, 'sign() reproduces the Standard Webhooks test vector');
check(verify([V.secret], V.id, V.ts, Buffer.from(V.body), V.sig, Number(V.ts)), 'verify() accepts the test vector at its timestamp');
check(verifyReason([V.secret], V.id, V.ts, V.body, V.sig) === 'timestamp outside tolerance',
    'verify() rejects the test vector now (timestamp outside ±300 s)');
check(verify([V.secret], V.id, V.ts, V.body, V.sig, Number(V.ts) + 300) && !verify([V.secret], V.id, V.ts, V.body, V.sig, Number(V.ts) + 301)
    && !verify([V.secret], V.id, V.ts, V.body, V.sig, Number(V.ts) - 301), 'tolerance is ±300 s inclusive');
check(!verify([V.secret], V.id, V.ts, '{"test": 2432232315}', V.sig, Number(V.ts))
    && !verify([V.secret], V.id + 'x', V.ts, V.body, V.sig, Number(V.ts))
    && !verify([V.secret], V.id, '1614265331', V.body, V.sig, 1614265331), 'verify() rejects a tampered body, id or timestamp');
const other = 'whsec_' + Buffer.from('another secret of 24 bytes!').toString('base64');
check(!verify([other], V.id, V.ts, V.body, V.sig, Number(V.ts)) && verify([other, V.secret], V.id, V.ts, V.body, V.sig, Number(V.ts))
    && verify([V.secret], V.id, V.ts, V.body, `v1,AAAA ${V.sig}`, Number(V.ts)) && !verify([V.secret], V.id, V.ts, V.body, V.sig.replace('v1,', 'v2,'), Number(V.ts)),
    'verify(): wrong secret rejected; any of several secrets and any of several v1 entries accepted; other versions ignored');
{
    const a = prng(7), b = prng(7);
    const xs = Array.from({ length: 5 }, a), ys = Array.from({ length: 5 }, b);
    check(xs.every((x, i) => x === ys[i] && x >= 0 && x < 1), 'the seeded PRNG is reproducible');
}

// ---------------------------------------------------------------- helpers
function startReceiver(name) {
    const ready = path.join(tmp, `${name}.ready`), record = path.join(tmp, `${name}.jsonl`);
    const child = spawn(process.execPath, [receiverPath, '--port', '0', '--record', record, '--ready-file', ready], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    let err = '';
    child.stderr.on('data', (d) => { err += d; process.stdout.write(`# receiver stderr: ${d}`); });
    const exited = new Promise((r) => child.on('exit', (code, signal) => { children.delete(child); r({ code, signal, at: performance.now() }); }));
    return (async () => {
        const t0 = performance.now();
        while (performance.now() - t0 < 5000) {
            if (fs.existsSync(ready) && /listening/.test(out)) break;
            await sleep(20);
        }
        const port = JSON.parse(fs.readFileSync(ready, 'utf8')).port;
        return { child, port, record, ready, exited, out: () => out, err: () => err };
    })();
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
let PORT = 0;
function request(method, p, body = '', headers = {}, opts = {}) {
    return new Promise((resolve) => {
        const t0 = performance.now();
        const r = http.request({ host: '127.0.0.1', port: opts.port || PORT, method, path: p, agent: opts.agent ?? agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(),
                ms: performance.now() - t0, reused: r.reusedSocket }));
            res.on('error', (e) => resolve({ error: e.code || e.message, ms: performance.now() - t0 }));
        });
        r.setTimeout(opts.timeout ?? 3000, () => r.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
        r.on('error', (e) => resolve({ error: e.code || e.message, ms: performance.now() - t0 }));
        r.end(body);
    });
}
const control = (p, cfg) => request('PUT', `/_control${p}`, JSON.stringify(cfg));
const stats = async (p) => JSON.parse((await request('GET', `/_stats?path=${encodeURIComponent(p)}`)).body);
const records = async (p) => JSON.parse((await request('GET', `/_records?path=${encodeURIComponent(p)}`)).body);
const nowTs = () => String(Math.floor(Date.now() / 1000));
let idn = 0;
function event(extra = {}) {
    return { id: extra.id ?? `evt_${++idn}`, type: 'order.created', occurred_at: '2026-01-01T00:00:00Z', payload: { n: idn }, headers: {}, ...extra };
}
// A signed delivery of ev to p (secret null: unsigned).
function deliver(p, ev, secret, { ts = nowTs(), sigHeader, id, opts } = {}) {
    const body = typeof ev === 'string' ? ev : JSON.stringify(ev);
    const wid = id ?? (typeof ev === 'object' ? ev.id : `raw_${++idn}`);
    const h = { 'webhook-id': wid, 'webhook-timestamp': ts };
    if (secret) h['webhook-signature'] = sigHeader ?? sign(secret, wid, ts, body);
    return request('POST', p, body, h, opts);
}

// ---------------------------------------------------------------- the server
const R = await startReceiver('main');
PORT = R.port;
check(Number.isInteger(PORT) && PORT > 0 && R.out().includes(`listening 127.0.0.1:${PORT}`),
    'receiver started on port 0: ready file has the port, stdout says "listening 127.0.0.1:N"', R.out());
check(!fs.readdirSync(tmp).some((f) => f.includes('.ready.tmp')), 'the ready file was renamed into place (no tmp file left)');

// Signatures over HTTP.
const S1 = V.secret, S2 = 'whsec_' + Buffer.from('0123456789abcdef01234567').toString('base64');
await control('/signed', { secrets: [S1] });
{
    const body = V.body, ts = nowTs(), id = 'msg_signed_1';
    const r = await request('POST', '/signed', body, { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': sign(S1, id, ts, body) });
    const bad = await deliver('/signed', event(), S2);
    const stale = await deliver('/signed', event(), S1, { ts: String(Math.floor(Date.now() / 1000) - 400) });
    const missing = await deliver('/signed', event(), null);
    const st = await stats('/signed');
    const recs = await records('/signed');
    check(r.status === 200 && recs[0].sig === 'ok' && recs[0].id === id && recs[0].ts === ts, 'a correctly signed request is answered 200 and recorded sig "ok"', { r, rec: recs[0] });
    check(bad.status === 401 && stale.status === 401 && missing.status === 401 && st.bad_signatures === 3 && st.answered['401'] === 3,
        'wrong secret, a timestamp 400 s old and a missing signature are answered 401 and counted', { bad: bad.status, stale: stale.status, missing: missing.status, st });
    check(recs.slice(1).every((x) => x.sig === 'bad'), 'bad signatures are recorded sig "bad"');
}
await control('/signed', { secrets: [S1, S2] });
{
    const ev = event(), body = JSON.stringify(ev), ts = nowTs();
    const both = `v1,${Buffer.alloc(32, 7).toString('base64')} ${sign(S2, ev.id, ts, body)}`;
    const r1 = await request('POST', '/signed', body, { 'webhook-id': ev.id, 'webhook-timestamp': ts, 'webhook-signature': both });
    const r2 = await deliver('/signed', event(), S1);
    const r3 = await deliver('/signed', event(), S2);
    const ev4 = event();
    const r4 = await deliver('/signed', ev4, S1, { sigHeader: sign(S1, ev4.id, nowTs(), JSON.stringify(ev4)).replace('v1,', 'v2,') });
    check(r1.status === 200 && r2.status === 200 && r3.status === 200, 'rotation: two secrets configured; a header with two v1 entries (one valid) and either secret alone pass',
        [r1.status, r2.status, r3.status]);
    check(r4.status === 401, 'a v2-only signature header is rejected');
}
{
    const r = await deliver('/unsigned', event(), null);
    const recs = await records('/unsigned');
    check(r.status === 200 && r.body === 'ok' && recs.length === 1 && recs[0].sig === null, 'no secrets configured: not checked, answered 200 "ok", sig null');
}

// Modes.
await control('/st', { mode: 'status', status: 503 });
{
    const a = await deliver('/st', event(), null);
    await control('/st', { status: 429, retry_after: 7 });
    const b = await deliver('/st', event(), null);
    await control('/st', { status: 410, retry_after: null });
    const c = await deliver('/st', event(), null);
    check(a.status === 503 && !('retry-after' in a.headers), 'mode status: 503 without Retry-After', a);
    check(b.status === 429 && b.headers['retry-after'] === '7', 'mode status: 429 with Retry-After: 7', b);
    check(c.status === 410, 'mode status: 410 (config merged: status replaced)', c);
    const st = await stats('/st');
    check(st.answered['503'] === 1 && st.answered['429'] === 1 && st.answered['410'] === 1 && st.received === 3, 'answered statuses are counted', st);
}
{
    await control('/flaky', { mode: 'flaky', fail_ratio: 0.3, seed: 42 });
    const seqA = [];
    for (let i = 0; i < 200; i++) seqA.push((await deliver('/flaky', event(), null)).status);
    await control('/flaky', { seed: 42 });   // re-seeding restarts the sequence
    const seqB = [];
    for (let i = 0; i < 40; i++) seqB.push((await deliver('/flaky', event(), null)).status);
    const fails = seqA.filter((s) => s === 500).length;
    check(fails >= 40 && fails <= 80 && seqA.every((s) => s === 500 || s === 200), `mode flaky: fail_ratio 0.3 over 200 requests gave ${fails} × 500`);
    check(seqB.every((s, i) => s === seqA[i]), 'mode flaky: the same seed gives the same sequence');
}
{
    await control('/stalled', { mode: 'stall', stall_ms: 300 });
    const a = await deliver('/stalled', event(), null);
    check(a.status === 200 && a.ms >= 290, `mode stall with stall_ms 300: answered 200 after ${a.ms.toFixed(0)} ms`, a);
    await control('/stalled', { stall_ms: 0 });
    const b = await deliver('/stalled', event(), null, { opts: { timeout: 250, agent: false } });
    await sleep(50);
    const recs = await records('/stalled');
    check(b.error === 'CLIENT_TIMEOUT' && recs.length === 2 && recs[0].answered === 200 && recs[0].stalled && recs[1].answered === 'stall',
        'mode stall without stall_ms: never answered; recorded "stall" once the client gave up', { b, recs });
}
{
    await control('/drop', { mode: 'drop' });
    const a = await deliver('/drop', event(), null, { opts: { agent: false } });
    const st = await stats('/drop');
    check(a.error === 'ECONNRESET' && st.answered.drop === 1, `mode drop: the client sees ${a.error}`, a);
    // On a raw socket: a reset is an error; drop_with "close" is a clean end of stream with no answer.
    const raw = (p) => new Promise((resolve) => {
        const s = net.connect(PORT, '127.0.0.1', () => s.write(`POST ${p} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}`));
        let d = '';
        s.on('data', (c) => { d += c; });
        s.on('error', (e) => resolve({ error: e.code, data: d }));
        s.on('end', () => resolve({ end: true, data: d }));
        s.setTimeout(2000, () => { s.destroy(); resolve({ timeout: true }); });
    });
    const rst = await raw('/drop');
    await control('/drop', { drop_with: 'close' });
    const fin = await raw('/drop');
    check(rst.error === 'ECONNRESET' && rst.data === '' && fin.end && fin.data === '', 'mode drop: a TCP reset by default, a FIN with drop_with "close"', { rst, fin });
}
{
    await control('/redir', { mode: 'redirect', location: 'http://127.0.0.1:9/elsewhere' });
    const a = await deliver('/redir', event(), null);
    check(a.status === 302 && a.headers.location === 'http://127.0.0.1:9/elsewhere', 'mode redirect: 302 with Location', a);
}
{
    await control('/slow', { delay_ms: 200 });
    const a = await deliver('/slow', event(), null);
    await control('/big', { body: 'y'.repeat(100000) });
    const b = await deliver('/big', event(), null);
    check(a.status === 200 && a.ms >= 190, `delay_ms 200: answered after ${a.ms.toFixed(0)} ms`);
    check(b.status === 200 && b.body.length === 100000, 'body: a 100 kB response body');
}
{
    await control('/reset-me', { mode: 'status', status: 500 });
    const a = await deliver('/reset-me', event(), null);
    await request('DELETE', '/_control/reset-me');
    const b = await deliver('/reset-me', event(), null);
    check(a.status === 500 && b.status === 200, 'DELETE /_control/<path> resets the config');
}
{
    // Bad signature wins over mode ok/flaky; a failure mode decides by itself.
    await control('/sigmode', { secrets: [S1], mode: 'status', status: 503 });
    const a = await deliver('/sigmode', event(), S2);
    await control('/sigmode', { status: 200 });
    const b = await deliver('/sigmode', event(), S2);
    check(a.status === 503 && b.status === 401, 'bad signature with mode status: a non-2xx status is answered as configured, a 2xx becomes 401', [a.status, b.status]);
}

// Duplicates and order.
{
    const A = event({ id: 'dup_A' }), B = event({ id: 'dup_B' });
    await deliver('/dup', A, null);
    await deliver('/dup', A, null);
    await control('/dup', { mode: 'status', status: 500 });
    await deliver('/dup', B, null);
    await request('DELETE', '/_control/dup');
    await deliver('/dup', B, null);                     // B's first success: not a duplicate
    await deliver('/dup', B, null);                     // a re-send after success: duplicate
    await deliver('/dup', A, null);
    const st = await stats('/dup');
    check(st.received === 6 && st.unique_ids === 2 && st.duplicates === 3, 'duplicates: only re-sends of ids already answered 2xx count', st);
}
{
    const k = (key, seq) => event({ ordering_key: key, seq });
    await deliver('/ord', k('k1', 1), null);
    await deliver('/ord', k('k1', 3), null);
    await deliver('/ord', k('k1', 2), null);            // after 3 was acked: violation
    await deliver('/ord', k('k2', 1), null);            // another key: fine
    await control('/ord', { mode: 'status', status: 500 });
    await deliver('/ord', k('k2', 9), null);            // failed: does not count as acked
    await request('DELETE', '/_control/ord');
    await deliver('/ord', k('k2', 5), null);
    await deliver('/ord', event({ seq: 0 }), null);      // no ordering key
    await deliver('/ord', k('k1', '4'), null);          // seq as a string
    await deliver('/ord', k('k1', 3), null);            // 4 acked: violation
    await deliver('/ord', k('k1', 4), null);            // the same seq again: a duplicate, not a violation
    const st = await stats('/ord');
    const recs = await records('/ord');
    check(st.order_violations === 2 && recs.filter((r) => r.order_violation).map((r) => r.seq).join() === '2,3',
        'order violations: an acked seq below one already acked for the same key (2 of 10; the same seq again is none)', st);
}
{
    const a = await request('POST', '/junk', '{"type": "x", "seq": ', { 'webhook-id': 'junk1' });
    const b = await request('POST', '/junk', '', {});
    const c = await request('POST', '/junk', '[1,2]', { 'webhook-id': 'junk3', 'webhook-timestamp': 'soon' });
    const recs = await records('/junk');
    check(a.status === 200 && b.status === 200 && c.status === 200 && recs.length === 3 && recs.every((r) => r.type === null && r.seq === null)
        && recs[0].id === 'junk1' && recs[1].id === null, 'malformed bodies and missing headers: recorded with null fields', recs);
    const bad = await request('PUT', '/_control/junk', '{not json');
    check(bad.status === 400, 'a bad JSON control body gets 400');
}
{
    // Not HTTP at all: 400 and the server lives on.
    const got = await new Promise((resolve) => {
        const s = net.connect(PORT, '127.0.0.1', () => s.write('garbage\r\n\r\n'));
        let d = '';
        s.on('data', (c) => { d += c; });
        s.on('close', () => resolve(d));
        s.on('error', () => resolve(d));
        s.setTimeout(2000, () => s.destroy());
    });
    const alive = await request('GET', '/_stats');
    check(/^HTTP\/1\.1 400/.test(got) && alive.status === 200, 'garbage on a socket: 400, and the receiver still answers');
}
{
    const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const rs = [];
    for (let i = 0; i < 5; i++) rs.push(await deliver('/ka', event(), null, { opts: { agent: one } }));
    check(rs.every((r) => r.status === 200 && r.headers.connection === 'keep-alive') && rs.slice(1).every((r) => r.reused),
        'keep-alive: 5 requests over one connection');
    await control('/ka-stall', { mode: 'stall', stall_ms: 5 });
    const ss = [];
    for (let i = 0; i < 15; i++) ss.push(await deliver('/ka-stall', event(), null, { opts: { agent: one } }));
    one.destroy();
    check(ss.every((r) => r.status === 200) && ss.slice(1).every((r) => r.reused), 'keep-alive: 15 stalls answered after stall_ms over one connection');
}
{
    const all = JSON.parse((await request('GET', '/_stats')).body);
    check(['/signed', '/st', '/flaky', '/ord', '/dup'].every((p) => p in all) && all['/flaky'].received === 240
        && typeof all['/flaky'].first_at === 'number' && all['/flaky'].last_at >= all['/flaky'].first_at, 'GET /_stats covers every path, with first_at/last_at', all['/flaky']);
    const total = Object.values(all).reduce((s, x) => s + x.received, 0);
    await sleep(300);   // the record file is flushed every 100 ms
    const lines = fs.readFileSync(R.record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const want = ['path', 'id', 'ts', 'sig', 'answered', 'at', 'type', 'ordering_key', 'seq', 'occurred_at'];
    check(lines.length === total && lines.every((l) => want.every((k) => k in l)), `record file: ${lines.length} JSON lines, one per delivery (${total}), with every field`);
    const unknown = await stats('/never');
    const again = JSON.parse((await request('GET', '/_stats')).body);
    check(unknown.received === 0 && unknown.unique_ids === 0 && (await records('/never')).length === 0 && !('/never' in again),
        'an unknown path has zero counters and no records, and asking does not create it');
    const rs = await request('POST', '/_reset');
    const after = JSON.parse((await request('GET', '/_stats')).body);
    const cfg = JSON.parse((await request('GET', '/_control/signed')).body);
    check(rs.status === 200 && Object.keys(after).length === 0 && (await records('/flaky')).length === 0 && cfg.secrets.length === 2,
        'POST /_reset clears records and stats; configs stay');
}

// Shutdown with 50 stalled sockets.
{
    await control('/hang', { mode: 'stall' });
    const pend = [];
    for (let i = 0; i < 50; i++) pend.push(deliver('/hang', event(), null, { opts: { agent: false, timeout: 5000 } }));
    const t0 = performance.now();
    let st;
    while (performance.now() - t0 < 3000) { st = await stats('/hang'); if (st.received === 50) break; await sleep(20); }
    check(st.received === 50, '50 stalled requests are open');
    const tKill = performance.now();
    R.child.kill('SIGTERM');
    const ex = await Promise.race([R.exited, sleep(3000).then(() => null)]);
    const ms = ex ? ex.at - tKill : Infinity;
    check(ex && ex.code === 0 && ms < 1000, `SIGTERM with 50 stalled sockets: exit 0 after ${ms.toFixed(0)} ms`, ex);
    const res = await Promise.race([Promise.all(pend), sleep(2000).then(() => [])]);
    check(res.length === 50 && res.every((r) => r.error), 'the stalled clients see their connections closed', res.slice(0, 2));
    const lines = fs.readFileSync(R.record, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    check(R.err() === '', 'the receiver wrote nothing on stderr (no errors, no warnings)', R.err());
    check(lines.filter((l) => l.path === '/hang' && l.answered === 'stall').length === 50, 'the record file has the 50 stalled deliveries (flushed at exit)');
}

// A second receiver: SIGINT right after a burst still writes every record.
{
    const R2 = await startReceiver('second');
    const burst = [];
    for (let i = 0; i < 300; i++) burst.push(deliver('/burst', event(), null, { opts: { port: R2.port } }));
    await Promise.all(burst);
    R2.child.kill('SIGINT');
    const ex = await Promise.race([R2.exited, sleep(3000).then(() => null)]);
    const lines = fs.readFileSync(R2.record, 'utf8').trim().split('\n');
    check(ex && ex.code === 0 && lines.length === 300, `SIGINT right after 300 deliveries: exit 0, ${lines.length} records written`);
}

agent.destroy();
clearTimeout(watchdog);
fs.rmSync(tmp, { recursive: true, force: true });
console.log(`1..${n}`);
console.log(`# ${n - failed} passed, ${failed} failed, ${((performance.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
