"""Verifying outbox webhooks (Standard Webhooks) in Python, standard library only.

Copy this file. Run as a program it is a small receiver:

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 verify.py

It answers 204 to a valid delivery, 401 to a bad signature or a stale
timestamp, 400 to a body that is not JSON. Deliveries are at least once: the
same webhook-id can arrive again, so handle events idempotently (this example
remembers the ids it has seen, in memory).
"""
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookVerificationError(Exception):
    pass


def _key(secret):
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise TypeError("a secret looks like whsec_<base64>")
    return base64.b64decode(secret[len("whsec_"):])


def _header(headers, name):
    # dict (any case) or http.client.HTTPMessage / email.message.Message
    getter = getattr(headers, "get", None)
    if getter is not None:
        v = getter(name)
        if v is not None:
            return v
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def verify_webhook(secret, headers, raw_body, tolerance_sec=300, now=None):
    """Checks a delivery and returns its parsed JSON body, or raises WebhookVerificationError.

    secret: "whsec_..." or a list of them (while you rotate secrets).
    headers: a mapping of the request headers (any case).
    raw_body: the exact bytes received (bytes or str), never a re-serialized object.
    tolerance_sec: how far webhook-timestamp may be from now, either way (replay window).
    now: unix seconds, for tests (default: the clock).
    """
    msg_id = _header(headers, "webhook-id")
    ts = _header(headers, "webhook-timestamp")
    sigs = _header(headers, "webhook-signature")
    if not msg_id or not ts or not sigs:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not re.fullmatch(r"[0-9]+", ts):
        raise WebhookVerificationError("webhook-timestamp is not unix seconds")
    current = int(time.time()) if now is None else now
    if current - int(ts) > tolerance_sec:
        raise WebhookVerificationError("webhook-timestamp too old")
    if int(ts) - current > tolerance_sec:
        raise WebhookVerificationError("webhook-timestamp in the future")

    body = raw_body if isinstance(raw_body, bytes) else str(raw_body).encode("utf-8")
    signed = f"{msg_id}.{ts}.".encode("utf-8") + body
    secrets = secret if isinstance(secret, (list, tuple)) else [secret]
    expected = [hmac.new(_key(s), signed, hashlib.sha256).digest() for s in secrets]
    # Space-separated "version,signature" entries; only v1 (HMAC-SHA256) is ours.
    for entry in sigs.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        for want in expected:
            if hmac.compare_digest(given, want):
                try:
                    return json.loads(body)
                except ValueError:
                    raise WebhookVerificationError("the body is not JSON") from None
    raise WebhookVerificationError("no valid v1 signature")


def make_handler(secret, on_event=lambda event, msg_id: None):
    seen = set()  # webhook-ids already handled (use your database in real code)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status, text=""):
            data = text.encode()
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            if length > 1 << 20:
                self.close_connection = True
                return self._answer(413, "too large")
            raw = self.rfile.read(length)
            try:
                event = verify_webhook(secret, self.headers, raw)
            except WebhookVerificationError as e:
                return self._answer(400 if str(e) == "the body is not JSON" else 401, str(e))
            msg_id = self.headers["webhook-id"]
            with lock:
                new = msg_id not in seen
                seen.add(msg_id)
            if new:
                on_event(event, msg_id)
            self._answer(204)  # any 2xx acknowledges; anything else is retried

        def log_message(self, *args):
            pass

    return Handler


def main():
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        print("set WEBHOOK_SECRET=whsec_...", file=sys.stderr)
        sys.exit(2)

    def on_event(event, msg_id):
        print(f"event {msg_id}: {event.get('type', '(no type)') if isinstance(event, dict) else '(not an object)'}", flush=True)

    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))),
                                 make_handler(secret, on_event))
    host, port = server.server_address[:2]
    print(f"listening {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    main()
