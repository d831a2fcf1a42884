// Verifying outbox webhooks (Standard Webhooks) in Node, standard library only.
// Copy this file. Run as a program it is a small receiver:
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node verify.mjs
//
// It answers 204 to a valid delivery, 401 to a bad signature or a stale
// timestamp, 400 to a body that is not JSON. Deliveries are at least once:
// the same webhook-id can arrive again, so handle events idempotently (this
// example remembers the ids it has seen, in memory).
import crypto from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

export class WebhookVerificationError extends Error {}

function header(headers, name) {
    const v = typeof headers.get === 'function' ? headers.get(name) : headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v ?? null;
}

function key(secret) {
    if (typeof secret !== 'string' || !secret.startsWith('whsec_')) throw new TypeError('a secret looks like whsec_<base64>');
    return Buffer.from(secret.slice('whsec_'.length), 'base64');
}

/**
 * Checks a delivery and returns its parsed JSON body, or throws WebhookVerificationError.
 *
 * secret: "whsec_..." or an array of them (while you rotate secrets).
 * headers: Node's req.headers (lower-case names) or a fetch Headers object.
 * rawBody: the exact bytes received (Buffer or string): never a re-serialized object.
 * toleranceSec: how far webhook-timestamp may be from now, either way (replay window).
 * now: unix seconds, for tests (default: the clock).
 */
export function verifyWebhook(secret, headers, rawBody, { toleranceSec = 300, now } = {}) {
    const id = header(headers, 'webhook-id');
    const ts = header(headers, 'webhook-timestamp');
    const sigs = header(headers, 'webhook-signature');
    if (!id || !ts || !sigs) throw new WebhookVerificationError('missing webhook-id, webhook-timestamp or webhook-signature');
    if (!/^\d+$/.test(ts)) throw new WebhookVerificationError('webhook-timestamp is not unix seconds');
    const current = now ?? Math.floor(Date.now() / 1000);
    if (current - Number(ts) > toleranceSec) throw new WebhookVerificationError('webhook-timestamp too old');
    if (Number(ts) - current > toleranceSec) throw new WebhookVerificationError('webhook-timestamp in the future');

    const body = Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(String(rawBody), 'utf8');
    const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`, 'utf8'), body]);
    const expected = (Array.isArray(secret) ? secret : [secret]).map((s) => crypto.createHmac('sha256', key(s)).update(signed).digest());
    // Space-separated "version,signature" entries; only v1 (HMAC-SHA256) is ours.
    for (const entry of sigs.split(' ')) {
        const comma = entry.indexOf(',');
        if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
        const given = Buffer.from(entry.slice(comma + 1), 'base64');
        for (const want of expected) {
            if (given.length === want.length && crypto.timingSafeEqual(given, want)) {
                try {
                    return JSON.parse(body.toString('utf8'));
                } catch {
                    throw new WebhookVerificationError('the body is not JSON');
                }
            }
        }
    }
    throw new WebhookVerificationError('no valid v1 signature');
}

// ---------------------------------------------------------------- a small server

export function createServer(secret, onEvent = () => {}) {
    const seen = new Set();   // webhook-ids already handled (use your database in real code)
    return http.createServer((req, res) => {
        if (req.method !== 'POST') { res.writeHead(405).end(); return; }
        const chunks = [];
        let size = 0;
        req.on('data', (c) => { size += c.length; if (size <= 1 << 20) chunks.push(c); });
        req.on('end', () => {
            if (size > 1 << 20) { res.writeHead(413).end(); return; }
            let event;
            try {
                event = verifyWebhook(secret, req.headers, Buffer.concat(chunks));
            } catch (e) {
                if (!(e instanceof WebhookVerificationError)) throw e;
                res.writeHead(e.message === 'the body is not JSON' ? 400 : 401, { 'content-type': 'text/plain' }).end(e.message);
                return;
            }
            const id = req.headers['webhook-id'];
            if (!seen.has(id)) {
                seen.add(id);
                onEvent(event, id);
            }
            res.writeHead(204).end();   // any 2xx acknowledges; anything else is retried
        });
    });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
    const secret = process.env.WEBHOOK_SECRET;
    if (!secret) { console.error('set WEBHOOK_SECRET=whsec_...'); process.exit(2); }
    const server = createServer(secret, (event, id) => console.log(`event ${id}: ${event.type ?? '(no type)'}`));
    server.listen(Number(process.env.PORT ?? 8000), process.env.HOST ?? '127.0.0.1', () => {
        const a = server.address();
        console.log(`listening ${a.address}:${a.port}`);
    });
    const stop = () => { server.close(); server.closeAllConnections?.(); process.exit(0); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}
