#!/usr/bin/env node
// Load generator for the receiver: N keep-alive connections posting signed
// deliveries for D seconds; prints one JSON line with the rate and latencies.
//
//   node test/webhook/loadgen.mjs --port P [--path /bench] [--connections 32]
//        [--seconds 5] [--secret whsec_...] [--body-bytes 200]
//
// With --secret the path is configured with that secret first and every
// request is signed (so the receiver does the HMAC check, as in production).
import http from 'node:http';
import { sign } from './receiver.mjs';

const a = { port: 0, path: '/bench', connections: 32, seconds: 5, secret: null, bodyBytes: 200 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[++i];
    if (k === '--port') a.port = Number(v);
    else if (k === '--path') a.path = v;
    else if (k === '--connections') a.connections = Number(v);
    else if (k === '--seconds') a.seconds = Number(v);
    else if (k === '--secret') a.secret = v;
    else if (k === '--body-bytes') a.bodyBytes = Number(v);
    else { console.error(`unknown argument ${k}`); process.exit(2); }
}
if (!a.port) { console.error('--port is required'); process.exit(2); }

const agent = new http.Agent({ keepAlive: true, maxSockets: a.connections });
function req(method, path, body, headers = {}) {
    return new Promise((resolve, reject) => {
        const r = http.request({ host: '127.0.0.1', port: a.port, method, path, agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        });
        r.setTimeout(10000, () => r.destroy(new Error('timeout')));
        r.on('error', reject);
        r.end(body);
    });
}

if (a.secret) await req('PUT', `/_control${a.path}`, JSON.stringify({ secrets: [a.secret] }));
const pad = 'x'.repeat(Math.max(0, a.bodyBytes - 120));
let n = 0, errors = 0, non2xx = 0;
const lat = [];
const deadline = performance.now() + a.seconds * 1000;
async function worker(w) {
    let seq = 0;
    while (performance.now() < deadline) {
        const id = `evt_${w}_${seq}`;
        const body = JSON.stringify({ id, type: 'bench.event', occurred_at: new Date().toISOString(),
            ordering_key: `k${w}`, seq: seq++, payload: { pad } });
        const ts = String(Math.floor(Date.now() / 1000));
        const h = { 'webhook-id': id, 'webhook-timestamp': ts };
        if (a.secret) h['webhook-signature'] = sign(a.secret, id, ts, body);
        const t0 = performance.now();
        try {
            const st = await req('POST', a.path, body, h);
            if (st < 200 || st >= 300) non2xx++;
            n++;
            if ((n & 7) === 0) lat.push(performance.now() - t0);
        } catch { errors++; }
    }
}
const t0 = performance.now();
await Promise.all(Array.from({ length: a.connections }, (_, w) => worker(w)));
const secs = (performance.now() - t0) / 1000;
lat.sort((x, y) => x - y);
const q = (p) => (lat.length ? +lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(2) : null);
console.log(JSON.stringify({ requests: n, errors, non2xx, seconds: +secs.toFixed(2), rps: Math.round(n / secs),
    p50_ms: q(0.5), p99_ms: q(0.99), connections: a.connections }));
agent.destroy();
