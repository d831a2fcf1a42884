"""Tests of verify.py: python3 test_verify.py (prints "ok N - ..." lines; exit 1 on failure).

Plain unittest; run as a program it reports one TAP-ish line per test (the
first line of its docstring).
"""
import base64
import hashlib
import hmac
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from verify import WebhookVerificationError, verify_webhook  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = "1614265330"
BODY = b'{"test": 2432232314}'
SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
WRONG = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def headers(**over):
    h = {"webhook-id": MSG_ID, "webhook-timestamp": TS, "webhook-signature": SIG}
    for k, v in over.items():
        k = k.replace("_", "-")
        if v is None:
            h.pop(k)
        else:
            h[k] = v
    return h


def sign(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()


class Verify(unittest.TestCase):
    def reason(self, *args, **kw):
        try:
            verify_webhook(*args, **kw)
            return None
        except WebhookVerificationError as e:
            return str(e)

    def test_vector(self):
        """the spec test vector verifies (now = its timestamp) and the parsed body is returned"""
        self.assertEqual(verify_webhook(SECRET, headers(), BODY, now=int(TS)), {"test": 2432232314})
        self.assertEqual(verify_webhook(SECRET, headers(), BODY.decode(), now=int(TS)), {"test": 2432232314})
        self.assertEqual(sign(SECRET, MSG_ID, TS, BODY), SIG)

    def test_header_case(self):
        """header names are matched in any case"""
        h = {k.upper(): v for k, v in headers().items()}
        self.assertEqual(verify_webhook(SECRET, h, BODY, now=int(TS)), {"test": 2432232314})

    def test_tampered(self):
        """a tampered body, webhook-id or webhook-timestamp is rejected"""
        self.assertEqual(self.reason(SECRET, headers(), b'{"test": 2432232315}', now=int(TS)), "no valid v1 signature")
        self.assertEqual(self.reason(SECRET, headers(webhook_id="msg_other"), BODY, now=int(TS)), "no valid v1 signature")
        self.assertEqual(self.reason(SECRET, headers(webhook_timestamp="1614265331"), BODY, now=1614265331), "no valid v1 signature")

    def test_wrong_secret(self):
        """a wrong secret is rejected"""
        self.assertEqual(self.reason(WRONG, headers(), BODY, now=int(TS)), "no valid v1 signature")

    def test_rotation(self):
        """rotation: either of two secrets verifies; a header with two v1 signatures, one valid, verifies"""
        self.assertIsNone(self.reason([WRONG, SECRET], headers(), BODY, now=int(TS)))
        other = "v1," + base64.b64encode(os.urandom(32)).decode()
        self.assertIsNone(self.reason(SECRET, headers(webhook_signature=f"{other} {SIG}"), BODY, now=int(TS)))
        self.assertIsNone(self.reason(SECRET, headers(webhook_signature=f"{SIG} {other}"), BODY, now=int(TS)))

    def test_versions(self):
        """other signature versions (v1a, v2) and malformed entries are rejected"""
        for bad in (SIG.replace("v1,", "v1a,"), SIG.replace("v1,", "v2,"), "v1,", "v1,!!!notbase64", "garbage"):
            self.assertEqual(self.reason(SECRET, headers(webhook_signature=bad), BODY, now=int(TS)), "no valid v1 signature", bad)

    def test_missing(self):
        """a missing webhook-id, webhook-timestamp or webhook-signature header is rejected"""
        for h in ("webhook_id", "webhook_timestamp", "webhook_signature"):
            self.assertRegex(self.reason(SECRET, headers(**{h: None}), BODY, now=int(TS)), "^missing", h)

    def test_tolerance(self):
        """tolerance: 300 s either way is accepted, 301 s old or in the future is rejected"""
        self.assertIsNone(self.reason(SECRET, headers(), BODY, now=int(TS) + 300))
        self.assertIsNone(self.reason(SECRET, headers(), BODY, now=int(TS) - 300))
        self.assertEqual(self.reason(SECRET, headers(), BODY, now=int(TS) + 301), "webhook-timestamp too old")
        self.assertEqual(self.reason(SECRET, headers(), BODY, now=int(TS) - 301), "webhook-timestamp in the future")
        self.assertEqual(self.reason(SECRET, headers(), BODY), "webhook-timestamp too old")
        self.assertIsNone(self.reason(SECRET, headers(), BODY, now=int(TS) + 3000, tolerance_sec=3600))
        self.assertEqual(self.reason(SECRET, headers(webhook_timestamp="2021-02-26"), BODY, now=int(TS)),
                         "webhook-timestamp is not unix seconds")


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        here = os.path.dirname(os.path.abspath(__file__))
        cls.proc = subprocess.Popen([sys.executable, "-u", os.path.join(here, "verify.py")],
                                    env={**os.environ, "PORT": "0", "WEBHOOK_SECRET": SECRET},
                                    stdout=subprocess.PIPE, text=True)
        cls.lines = []
        first = threading.Event()

        def read():
            for line in cls.proc.stdout:
                cls.lines.append(line.rstrip("\n"))
                first.set()
        threading.Thread(target=read, daemon=True).start()
        if not first.wait(5):
            cls.proc.kill()
            raise RuntimeError("the example server did not start within 5 s")
        m = re.match(r"listening 127\.0\.0\.1:(\d+)$", cls.lines[0])
        cls.port = int(m.group(1)) if m else None

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        try:
            cls.proc.wait(3)
        except subprocess.TimeoutExpired:
            cls.proc.kill()

    def post(self, hdrs, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/webhooks", data=body, method="POST",
                                     headers={"content-type": "application/json", **hdrs})
        try:
            with urllib.request.urlopen(req, timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_1_signed(self):
        """end to end: a signed delivery gets 204, and again (a retry) too; the event is handled once"""
        self.assertIsNotNone(self.port)
        now = str(int(time.time()))
        mid = "0190e0c5-0000-7000-8000-000000000002"
        ev = ('{"id": "%s", "type": "order.created", "occurred_at": "2026-01-01T00:00:00Z", '
              '"payload": {"note": "na\\u00efve"}, "headers": {}, "ordering_key": "order-7", "seq": 1}' % mid).encode()
        h = {"webhook-id": mid, "webhook-timestamp": now, "webhook-signature": sign(SECRET, mid, now, ev)}
        self.assertEqual(self.post(h, ev), 204)
        self.assertEqual(self.post(h, ev), 204)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not any(line.startswith("event ") for line in self.lines):
            time.sleep(0.02)
        handled = [line for line in self.lines if line.startswith("event ")]
        self.assertEqual(handled, [f"event {mid}: order.created"])

    def test_2_rejected(self):
        """end to end: tampered body, wrong secret, a 10-minute-old timestamp, no signature get 401; a signed non-JSON body 400"""
        now = str(int(time.time()))
        mid, ev = "m2", b'{"type": "x"}'
        good = {"webhook-id": mid, "webhook-timestamp": now, "webhook-signature": sign(SECRET, mid, now, ev)}
        self.assertEqual(self.post(good, b'{"type": "y"}'), 401)
        self.assertEqual(self.post({**good, "webhook-signature": sign(WRONG, mid, now, ev)}, ev), 401)
        old = str(int(now) - 600)
        self.assertEqual(self.post({**good, "webhook-timestamp": old, "webhook-signature": sign(SECRET, mid, old, ev)}, ev), 401)
        self.assertEqual(self.post({"webhook-id": mid, "webhook-timestamp": now}, ev), 401)
        self.assertEqual(self.post({**good, "webhook-signature": sign(SECRET, mid, now, b"not json")}, b"not json"), 400)


class TapResult(unittest.TestResult):
    n = 0

    def _line(self, test, ok, detail=None):
        TapResult.n += 1
        what = (test.shortDescription() or str(test)) if isinstance(test, unittest.TestCase) else str(test)
        print(f"{'' if ok else 'not '}ok {TapResult.n} - {what}", flush=True)
        if detail:
            for line in detail.rstrip().splitlines()[-12:]:
                print(f"# {line}")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(test, False, self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._line(test, False, self._exc_info_to_string(err, test))


if __name__ == "__main__":
    threading.Timer(20, lambda: (print("not ok - finished within 20 s", flush=True), os._exit(1))).start()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = TapResult()
    suite.run(result)
    print(f"1..{TapResult.n}")
    os._exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
