// Tests of verify.mjs: node test.mjs (prints "ok N - ..." lines; exit 1 on failure).
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { verifyWebhook, WebhookVerificationError } from './verify.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
let n = 0, failed = 0;
function check(cond, what, detail) {
    n++;
    console.log(`${cond ? '' : 'not '}ok ${n} - ${what}`);
    if (!cond) { failed++; if (detail !== undefined) console.log(`# ${JSON.stringify(detail)}`); }
}
// The reason verifyWebhook throws, or null when it returns.
function rejects(...args) {
    try { verifyWebhook(...args); return null; } catch (e) { return e instanceof WebhookVerificationError ? e.message : `unexpected ${e}`; }
}
const watchdog = setTimeout(() => { console.log(`not ok ${n + 1} - finished within 20 s`); process.exit(1); }, 20000);

// The Standard Webhooks test vector.
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek', ts = '1614265330', body = '{"test": 2432232314}';
const sig = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
const H = (over = {}) => ({ 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': sig, ...over });
const at = { now: Number(ts) };
const sign = (s, i, t, b) => 'v1,' + crypto.createHmac('sha256', Buffer.from(s.slice(6), 'base64')).update(`${i}.${t}.${b}`).digest('base64');

{
    let ev = null, err = null;
    try { ev = verifyWebhook(secret, H(), body, at); } catch (e) { err = e; }
    check(ev && ev.test === 2432232314 && err === null, 'the spec test vector verifies (now = its timestamp) and the parsed body is returned', String(err));
    check(verifyWebhook(secret, H(), Buffer.from(body), at).test === 2432232314, 'a Buffer body works the same');
    check(verifyWebhook(secret, new Headers(H()), body, at).test === 2432232314, 'a fetch Headers object works too');
}
check(rejects(secret, H(), '{"test": 2432232315}', at) === 'no valid v1 signature', 'a tampered body is rejected');
check(rejects(secret, H({ 'webhook-id': 'msg_other' }), body, at) === 'no valid v1 signature', 'a tampered webhook-id is rejected');
check(rejects(secret, H({ 'webhook-timestamp': '1614265331' }), body, { now: 1614265331 }) === 'no valid v1 signature', 'a tampered webhook-timestamp is rejected');
const wrong = 'whsec_' + crypto.randomBytes(24).toString('base64');
check(rejects(wrong, H(), body, at) === 'no valid v1 signature', 'a wrong secret is rejected');
check(rejects([wrong, secret], H(), body, at) === null, 'rotation: either of two secrets verifies');
check(rejects(secret, H({ 'webhook-signature': `v1,${crypto.randomBytes(32).toString('base64')} ${sig}` }), body, at) === null,
    'rotation: a header with two v1 signatures, one valid, verifies');
check(rejects(secret, H({ 'webhook-signature': sig.replace('v1,', 'v1a,') }), body, at) === 'no valid v1 signature'
    && rejects(secret, H({ 'webhook-signature': sig.replace('v1,', 'v2,') }), body, at) === 'no valid v1 signature',
    'other signature versions (v1a, v2) are not accepted as v1');
check(rejects(secret, H({ 'webhook-signature': 'v1,' }), body, at) !== null && rejects(secret, H({ 'webhook-signature': 'garbage' }), body, at) !== null,
    'an empty or malformed signature is rejected');
for (const h of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
    const hs = H(); delete hs[h];
    check(/^missing/.test(rejects(secret, hs, body, at)), `a missing ${h} header is rejected`);
}
check(rejects(secret, H(), body, { now: Number(ts) + 300 }) === null && rejects(secret, H(), body, { now: Number(ts) - 300 }) === null,
    'tolerance: 300 s either way is accepted');
check(/too old$/.test(rejects(secret, H(), body, { now: Number(ts) + 301 })) && /in the future$/.test(rejects(secret, H(), body, { now: Number(ts) - 301 })),
    'tolerance: an old or a future timestamp (301 s) is rejected');
check(/too old/.test(rejects(secret, H(), body)), 'with the real clock the 2021 test vector is too old');
check(rejects(secret, H(), body, { now: Number(ts) + 3000, toleranceSec: 3600 }) === null, 'toleranceSec widens the window');
check(/unix seconds/.test(rejects(secret, H({ 'webhook-timestamp': '2021-02-26' }), body, at)), 'a timestamp that is not unix seconds is rejected');

// End to end: the example server on port 0.
const child = spawn(process.execPath, [path.join(here, 'verify.mjs')], {
    env: { ...process.env, PORT: '0', WEBHOOK_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const port = await new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), 5000);
    child.stdout.on('data', (d) => {
        out += d;
        const m = /listening 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
});
check(port !== null, 'the example server starts on port 0 (PORT=0) and prints its port', out);
function post(headers, b) {
    return new Promise((resolve) => {
        const r = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/webhooks', agent: false,
            headers: { 'content-type': 'application/json', ...headers } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
        r.setTimeout(3000, () => r.destroy());
        r.on('error', () => resolve('error'));
        r.end(b);
    });
}
if (port !== null) {
    const now = String(Math.floor(Date.now() / 1000));
    const ev = JSON.stringify({ id: '0190e0c5-0000-7000-8000-000000000001', type: 'order.created', occurred_at: new Date().toISOString(),
        payload: { order: 42, note: 'naïve 🍕' }, headers: {}, ordering_key: 'order-42', seq: 1 });
    const eid = '0190e0c5-0000-7000-8000-000000000001';
    const good = { 'webhook-id': eid, 'webhook-timestamp': now, 'webhook-signature': sign(secret, eid, now, ev) };
    const s1 = await post(good, ev);
    const s2 = await post(good, ev);
    const s3 = await post(good, ev.replace('42', '43'));
    const s4 = await post({ ...good, 'webhook-signature': sign(wrong, eid, now, ev) }, ev);
    const old = String(Number(now) - 600);
    const s5 = await post({ ...good, 'webhook-timestamp': old, 'webhook-signature': sign(secret, eid, old, ev) }, ev);
    const s6 = await post({ 'webhook-id': eid, 'webhook-timestamp': now }, ev);
    const nj = 'not json';
    const s7 = await post({ 'webhook-id': 'x1', 'webhook-timestamp': now, 'webhook-signature': sign(secret, 'x1', now, nj) }, nj);
    check(s1 === 204, `end to end: a signed delivery is answered ${s1}`);
    check(s2 === 204, 'end to end: the same delivery again (a retry) is acknowledged too');
    check(s3 === 401 && s4 === 401 && s5 === 401 && s6 === 401, `end to end: tampered body, wrong secret, 10-minute-old timestamp, no signature: ${[s3, s4, s5, s6]}`);
    check(s7 === 400, 'end to end: a signed body that is not JSON gets 400');
    // The server prints the event before it answers; the pipe may lag a little.
    for (let i = 0; i < 50 && !out.includes('event '); i++) await new Promise((r) => setTimeout(r, 20));
    const lines = out.split('\n').filter((l) => l.startsWith('event '));
    check(lines.length === 1 && lines[0].includes('order.created'), 'end to end: the event was handled once', out);
}
child.kill('SIGTERM');
await new Promise((r) => { if (child.exitCode !== null) r(); else child.on('exit', r); setTimeout(r, 2000); });
clearTimeout(watchdog);
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
