#!/usr/bin/env node
// A Standard Webhooks receiver for the tests and the benchmark (Node stdlib only).
//
//   node test/webhook/receiver.mjs [--port N] [--host 127.0.0.1] [--record FILE.jsonl]
//                                  [--ready-file FILE] [--max-records N]
//
// Listens on loopback only. Once listening it writes {"port": N} to the ready
// file (tmp + rename) and prints "listening 127.0.0.1:N".
//
// Every POST to a path that is not /_... is a delivery to the endpoint of that
// path (query string ignored). Each endpoint has a config set over HTTP:
//   PUT    /_control/<path>   JSON body merged into the config of /<path>
//   DELETE /_control/<path>   back to the defaults
//   GET    /_control/<path>   the current config
//   GET    /_stats[?path=/x]  counters (all paths, or one)
//   GET    /_records[?path=/x] records, as a JSON array
//   POST   /_reset            clear records and counters (configs stay)
// Config fields: secrets (["whsec_..."]), mode (ok|status|flaky|stall|drop|
// redirect), status, retry_after, fail_ratio, seed, stall_ms, delay_ms, body,
// location, drop_with, tolerance_s. See test/webhook/README.md.
//
// Imported as a module it exports sign(), verify() and verifyReason().

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

// ------------------------------------------------------------------ signatures

const keyCache = new Map();

/** The HMAC key of a "whsec_<base64>" secret (the decoded bytes after whsec_). */
export function secretKey(secret) {
    let k = keyCache.get(secret);
    if (k === undefined) {
        const s = String(secret);
        k = Buffer.from(s.startsWith('whsec_') ? s.slice(6) : s, 'base64');
        if (keyCache.size > 1000) keyCache.clear();
        keyCache.set(secret, k);
    }
    return k;
}

function digest(key, id, ts, body) {
    const h = crypto.createHmac('sha256', key);
    h.update(`${id}.${ts}.`);
    h.update(typeof body === 'string' ? Buffer.from(body) : body);
    return h.digest();
}

/** "v1,<base64 HMAC-SHA256(key, id.ts.body)>" for one secret. */
export function sign(secret, id, ts, body) {
    return 'v1,' + digest(secretKey(secret), id, ts, body).toString('base64');
}

/**
 * Why a delivery's signature is not valid, or null if it is.
 * secrets: array of whsec_ strings; header: the webhook-signature value
 * (space-separated "v1,<b64>" entries); now: unix seconds (default: the clock);
 * toleranceSec: allowed skew of the timestamp either way.
 */
export function verifyReason(secrets, id, ts, body, header, now, toleranceSec = 300) {
    if (!id || !ts || !header) return 'missing header';
    if (String(id).includes('.') || !/^\d{1,15}$/.test(String(ts))) return 'bad id or timestamp';
    const t = Number(ts);
    const n = now === undefined ? Date.now() / 1000 : Number(now);
    if (Math.abs(n - t) > toleranceSec) return 'timestamp outside tolerance';
    const given = [];
    for (const part of String(header).split(' ')) {
        if (!part.startsWith('v1,')) continue;
        const b = Buffer.from(part.slice(3), 'base64');
        if (b.length === 32) given.push(b);
    }
    if (given.length === 0) return 'no v1 signature';
    for (const s of secrets) {
        const want = digest(secretKey(s), id, ts, body);
        for (const g of given) if (crypto.timingSafeEqual(want, g)) return null;
    }
    return 'no signature matches';
}

/** true when the signature header holds a valid v1 signature by one of the secrets. */
export function verify(secrets, id, ts, body, header, now, toleranceSec = 300) {
    return verifyReason(secrets, id, ts, body, header, now, toleranceSec) === null;
}

// ------------------------------------------------------------------ PRNG

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function prng(seed) {
    let a = (Number(seed) >>> 0) || 0x9e3779b9;
    return function () {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

// ------------------------------------------------------------------ server

function parseArgs(argv) {
    const o = { port: 0, host: '127.0.0.1', record: null, readyFile: null, maxRecords: 2000000 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const v = () => {
            if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--port') o.port = Number(v());
        else if (a === '--host') o.host = v();
        else if (a === '--record') o.record = v();
        else if (a === '--ready-file') o.readyFile = v();
        else if (a === '--max-records') o.maxRecords = Number(v());
        else if (a === '-h' || a === '--help') {
            console.log('usage: receiver.mjs [--port N] [--host 127.0.0.1] [--record FILE.jsonl] [--ready-file FILE] [--max-records N]');
            process.exit(0);
        } else throw new Error(`unknown argument: ${a}`);
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error('bad --port');
    if (o.host !== '127.0.0.1' && o.host !== 'localhost' && o.host !== '::1')
        throw new Error('--host must be a loopback address (127.0.0.1, ::1, localhost)');
    return o;
}

const DEFAULT_CONFIG = Object.freeze({ mode: 'ok' });
const BODY_LIMIT = 32 * 1024 * 1024;

export function startReceiver(opts = {}) {
    const o = { port: 0, host: '127.0.0.1', record: null, readyFile: null, maxRecords: 2000000, ...opts };
    const configs = new Map();   // path -> config (plain object)
    const rngs = new Map();      // path -> seeded PRNG (flaky mode)
    const stats = new Map();     // path -> per-path state
    let records = [];            // in memory, every path, arrival order of completion
    let recordsDropped = 0;
    let pending = [];            // JSON lines not yet written to the record file
    let writing = false;
    let fd = o.record ? fs.openSync(o.record, 'a') : null;
    const now = () => performance.timeOrigin + performance.now();

    function pathState(path) {
        let s = stats.get(path);
        if (s === undefined) {
            s = {
                received: 0, ids: new Map() /* id -> acked 2xx? */, duplicates: 0, bad_signatures: 0,
                answered: Object.create(null), order_violations: 0, first_at: null, last_at: null,
                maxSeq: new Map() /* ordering_key -> highest seq acked 2xx */, records: [],
            };
            stats.set(path, s);
        }
        return s;
    }

    const emptyState = pathState('');   // read-only stand-in for a path never seen
    stats.delete('');

    function statsOf(s) {
        return {
            received: s.received, unique_ids: s.ids.size, duplicates: s.duplicates,
            bad_signatures: s.bad_signatures, answered: { ...s.answered },
            order_violations: s.order_violations, first_at: s.first_at, last_at: s.last_at,
        };
    }

    function flush(cb) {
        if (fd === null || writing || pending.length === 0) { if (cb) cb(); return; }
        const data = pending.join('');
        pending = [];
        writing = true;
        fs.write(fd, data, null, 'utf8', (err) => {
            writing = false;
            if (err) process.stderr.write(`receiver: writing records: ${err.message}\n`);
            if (cb) cb();
        });
    }
    const flushTimer = fd === null ? null : setInterval(flush, 100);
    if (flushTimer) flushTimer.unref();

    function flushSync() {
        if (fd === null) return;
        if (pending.length) {
            try { fs.writeSync(fd, pending.join('')); } catch (e) { process.stderr.write(`receiver: ${e.message}\n`); }
            pending = [];
        }
    }

    // The outcome of a delivery is known: count it and record it.
    function finish(rec, s, answered) {
        rec.answered = answered;
        rec.answered_at = now();
        s.answered[answered] = (s.answered[answered] || 0) + 1;
        if (typeof answered === 'number' && answered >= 200 && answered < 300) {
            if (rec.id !== null) s.ids.set(rec.id, true);
            if (rec.ordering_key !== null && rec.ordering_key !== undefined && typeof rec.seq === 'number') {
                const k = String(rec.ordering_key);
                const m = s.maxSeq.get(k);
                if (m !== undefined && m > rec.seq) { s.order_violations++; rec.order_violation = true; }
                if (m === undefined || rec.seq > m) s.maxSeq.set(k, rec.seq);
            }
        }
        if (records.length < o.maxRecords) { records.push(rec); s.records.push(rec); } else recordsDropped++;
        if (fd !== null) pending.push(JSON.stringify(rec) + '\n');
    }

    function numOrNull(v) {
        if (typeof v === 'number' && Number.isFinite(v)) return v;
        if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
        return null;
    }

    const stalled = new Set();   // {rec, s, res, timer}

    function deliver(req, res, path, body) {
        const cfg = configs.get(path) || DEFAULT_CONFIG;
        const s = pathState(path);
        const at = now();
        const h = req.headers;
        const id = h['webhook-id'] ?? null;
        const ts = h['webhook-timestamp'] ?? null;
        let sig = null;
        if (cfg.secrets && cfg.secrets.length) {
            sig = verify(cfg.secrets, id, ts, body, h['webhook-signature'], undefined, cfg.tolerance_s ?? 300) ? 'ok' : 'bad';
        }
        let ev = null;
        if (body.length && body[0] === 0x7b /* { */) {
            try { ev = JSON.parse(body.toString('utf8')); } catch { ev = null; }
            if (ev === null || typeof ev !== 'object' || Array.isArray(ev)) ev = null;
        }
        const rec = {
            path, id, ts, sig, answered: null, at,
            type: ev && typeof ev.type === 'string' ? ev.type : null,
            ordering_key: ev && ev.ordering_key !== undefined ? ev.ordering_key : null,
            seq: ev ? numOrNull(ev.seq) : null,
            occurred_at: ev && ev.occurred_at !== undefined ? ev.occurred_at : null,
            body_id: ev && ev.id !== undefined ? ev.id : null,
        };
        s.received++;
        if (s.first_at === null) s.first_at = at;
        s.last_at = at;
        if (id !== null) {
            const acked = s.ids.get(id);
            if (acked === true) { s.duplicates++; rec.duplicate = true; }
            else if (acked === undefined) s.ids.set(id, false);
        }
        if (sig === 'bad') s.bad_signatures++;

        const mode = cfg.mode || 'ok';
        // A bad signature gets 401 unless the mode decides the answer by itself
        // (status with a non-2xx status, stall, drop, redirect).
        let status;
        if (mode === 'stall') return stall(req, res, rec, s, cfg);
        if (mode === 'drop') {
            finish(rec, s, 'drop');
            const sock = req.socket;
            // "reset" (default): a TCP RST (curl: error 56, recv failure);
            // "close": a FIN with no answer (curl: error 52, empty reply).
            if (cfg.drop_with !== 'close' && typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
            else sock.destroy();
            return;
        }
        if (mode === 'redirect') status = Number(cfg.status) >= 300 && Number(cfg.status) < 400 ? Number(cfg.status) : 302;
        else if (mode === 'status') status = Number(cfg.status) || 200;
        else if (mode === 'flaky') {
            let r;
            if (cfg.seed !== undefined && cfg.seed !== null) {
                r = rngs.get(path);
                if (r === undefined) { r = prng(cfg.seed); rngs.set(path, r); }
            }
            status = (r ? r() : Math.random()) < Number(cfg.fail_ratio ?? 0.5) ? 500 : Number(cfg.status) || 200;
        } else status = Number(cfg.status) || 200;
        if (sig === 'bad' && (mode === 'ok' || mode === 'flaky' || status < 300)) status = 401;

        const text = status === 401 ? 'bad signature' : (cfg.body !== undefined ? String(cfg.body) : 'ok');
        const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) };
        if (mode === 'status' && cfg.retry_after !== undefined && cfg.retry_after !== null && status !== 401)
            headers['retry-after'] = String(cfg.retry_after);
        if (mode === 'redirect') headers.location = cfg.location || '/redirected';
        const answer = () => {
            if (res.destroyed || req.socket.destroyed) { finish(rec, s, 'closed'); return; }
            res.writeHead(status, headers);
            res.end(text);
            finish(rec, s, status);
        };
        const delay = Number(cfg.delay_ms) || 0;
        if (delay > 0) setTimeout(answer, delay); else answer();
    }

    function stall(req, res, rec, s, cfg) {
        rec.stalled = true;
        const st = { rec, s, res, timer: null, done: false };
        stalled.add(st);
        const sock = req.socket;
        const onClose = () => end('stall');
        const end = (answered) => {
            if (st.done) return;
            st.done = true;
            stalled.delete(st);
            if (st.timer) clearTimeout(st.timer);
            sock.removeListener('close', onClose);   // a keep-alive socket lives on
            finish(rec, s, answered);
        };
        st.end = end;
        sock.once('close', onClose);
        const ms = Number(cfg.stall_ms) || 0;
        if (ms > 0) {
            st.timer = setTimeout(() => {
                if (res.destroyed || req.socket.destroyed) return end('stall');
                const text = cfg.body !== undefined ? String(cfg.body) : 'ok';
                res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
                res.end(text);
                end(200);
            }, ms);
        }
    }

    function json(res, status, obj) {
        const b = JSON.stringify(obj);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
        res.end(b);
    }

    function control(req, res, path, body) {
        const sub = path.slice('/_control'.length) || '/';
        if (req.method === 'GET') return json(res, 200, configs.get(sub) || {});
        if (req.method === 'DELETE') {
            configs.delete(sub);
            rngs.delete(sub);
            return json(res, 200, {});
        }
        if (req.method !== 'PUT' && req.method !== 'POST') return json(res, 405, { error: 'PUT, DELETE or GET' });
        let patch;
        try { patch = JSON.parse(body.toString('utf8') || '{}'); } catch (e) { return json(res, 400, { error: `bad JSON: ${e.message}` }); }
        if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return json(res, 400, { error: 'a JSON object is required' });
        if (patch.secrets !== undefined) {
            if (typeof patch.secrets === 'string') patch.secrets = [patch.secrets];
            if (patch.secrets === null) patch.secrets = [];
            if (!Array.isArray(patch.secrets) || patch.secrets.some((x) => typeof x !== 'string'))
                return json(res, 400, { error: 'secrets: an array of strings' });
        }
        if (patch.mode !== undefined && !['ok', 'status', 'flaky', 'stall', 'drop', 'redirect'].includes(patch.mode))
            return json(res, 400, { error: `unknown mode ${patch.mode}` });
        const cfg = { ...(configs.get(sub) || {}), ...patch };
        configs.set(sub, cfg);
        if ('seed' in patch || 'mode' in patch) rngs.delete(sub);
        return json(res, 200, cfg);
    }

    function handle(req, res, body) {
        const url = req.url || '/';
        const q = url.indexOf('?');
        const path = q < 0 ? url : url.slice(0, q);
        if (!path.startsWith('/_')) {
            if (req.method === 'POST') return deliver(req, res, path, body);
            res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 200 : 405, { 'content-type': 'text/plain' });
            return res.end('ok');
        }
        const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
        if (path.startsWith('/_control/') || path === '/_control') return control(req, res, path, body);
        if (path === '/_stats' && req.method === 'GET') {
            const p = params.get('path');
            if (p !== null) return json(res, 200, statsOf(stats.get(p) || emptyState));
            const out = {};
            for (const [k, v] of stats) out[k] = statsOf(v);
            return json(res, 200, out);
        }
        if (path === '/_records' && req.method === 'GET') {
            const p = params.get('path');
            return json(res, 200, p === null ? records : (stats.get(p) || emptyState).records);
        }
        if (path === '/_reset' && req.method === 'POST') {
            stats.clear();
            records = [];
            recordsDropped = 0;
            return json(res, 200, {});
        }
        if (path === '/_health') return json(res, 200, { ok: true, records: records.length, records_dropped: recordsDropped, stalled: stalled.size });
        return json(res, 404, { error: 'unknown control path' });
    }

    const server = http.createServer((req, res) => {
        const chunks = [];
        let size = 0;
        req.on('data', (c) => {
            size += c.length;
            if (size <= BODY_LIMIT) chunks.push(c);
        });
        req.on('end', () => {
            if (size > BODY_LIMIT) {
                res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
                return res.end('too large');
            }
            try {
                handle(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
            } catch (e) {
                process.stderr.write(`receiver: ${e.stack}\n`);
                if (!res.headersSent && !res.destroyed) { res.writeHead(500); res.end('receiver error'); }
            }
        });
        req.on('error', () => {});
    });
    server.keepAliveTimeout = 60000;
    server.headersTimeout = 65000;
    server.requestTimeout = 0;
    server.timeout = 0;
    server.maxRequestsPerSocket = 0;
    server.on('clientError', (err, sock) => {
        if (sock.writable && !sock.destroyed) sock.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
        else sock.destroy();
    });

    let closing = null;
    function close() {
        if (closing) return closing;
        closing = new Promise((resolve) => {
            server.close();
            for (const st of [...stalled]) st.end('stall');
            if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
            if (flushTimer) clearInterval(flushTimer);
            const done = () => {
                flushSync();
                if (fd !== null) { try { fs.closeSync(fd); } catch { /* gone */ } fd = null; }
                resolve();
            };
            // An asynchronous write may be in flight: let it finish, but not for long.
            if (!writing) return done();
            const t0 = Date.now();
            const wait = () => (!writing || Date.now() - t0 > 300 ? done() : setTimeout(wait, 5));
            wait();
        });
        return closing;
    }

    const ready = new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(o.port, o.host, () => {
            const port = server.address().port;
            if (o.readyFile) {
                const tmp = `${o.readyFile}.tmp${process.pid}`;
                fs.writeFileSync(tmp, JSON.stringify({ port }) + '\n');
                fs.renameSync(tmp, o.readyFile);
            }
            resolve(port);
        });
    });
    return { server, ready, close, flush };
}

// ------------------------------------------------------------------ main

const isMain = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
    let o;
    try { o = parseArgs(process.argv.slice(2)); } catch (e) { console.error(`receiver: ${e.message}`); process.exit(2); }
    const r = startReceiver(o);
    r.ready.then((port) => {
        process.stdout.write(`listening ${o.host}:${port}\n`);
    }, (e) => { console.error(`receiver: listen: ${e.message}`); process.exit(1); });
    const stop = () => {
        // Exit within a second whatever happens.
        setTimeout(() => process.exit(0), 900).unref();
        r.close().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}
