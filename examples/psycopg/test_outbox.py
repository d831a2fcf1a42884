"""psycopg 3 (Debian's python3-psycopg) publishing inside its transaction, through PgBouncer.

Prints one line per check: "ok - ...", "not ok - ..." or "skip - ... (why)".
Run by examples/run.sh (which sets DATABASE_URL and DATABASE_URL_STRICT).
"""
import json
import os
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from outbox import consume_in_transaction, publish
from place_order import connect, place_order

QUICK = os.environ.get("OUTBOX_EXAMPLES_QUICK") == "1"
FIXTURE_TEXT = (Path(__file__).resolve().parent.parent / "payload.json").read_text(encoding="utf-8")
FIXTURE = json.loads(FIXTURE_TEXT)
NO_SUBSCRIPTIONS = ("the installed extension has no subscription API (outbox_subscribe): "
                    "worker delivery is checked once the relay is built")


class Skip(Exception):
    pass


checks = []


def check(description):
    def register(fn):
        checks.append((description, fn))
        return fn
    return register


def where_is(conn, event_id):
    rows = conn.execute(
        """SELECT 'outbox', status::text FROM outbox_events WHERE id = %(id)s
           UNION ALL SELECT 'archive', status::text FROM outbox_events_archive WHERE id = %(id)s""",
        {"id": event_id}).fetchall()
    assert len(rows) <= 1, f"event {event_id} is in {len(rows)} places"
    return rows[0] if rows else None


def claim_and_complete(conn, type, expected=1):
    """Claim the events of one type through the SQL API and complete them."""
    got = []
    for _ in range(50):
        rows = conn.execute(
            """SELECT id, type, payload, payload::text, attempt, lease_token
                 FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'psycopg-test',
                                   types => ARRAY[%s])""", (type,)).fetchall()
        for row in rows:
            (n,) = conn.execute("SELECT outbox_complete(ARRAY[%s], %s)", (row[0], row[5])).fetchone()
            assert n == 1, f"completed {n} events, not 1"
            got.append(row)
        if len(got) >= expected:
            break
        time.sleep(0.05)
    return got


@check("rollback: the order and the event published in its transaction do not exist")
def _():
    with connect() as conn:
        ids = {}

        class PaymentDeclined(Exception):
            pass

        try:
            with conn.transaction():
                (ids["order"],) = conn.execute(
                    "INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-RB', 1, 'psycopg-rollback') RETURNING id"
                ).fetchone()
                ids["event"] = publish(conn, "example.psycopg.order.placed", {"orderId": ids["order"]})
                raise PaymentDeclined()
        except PaymentDeclined:
            pass
        assert isinstance(ids["event"], uuid.UUID)
        assert where_is(conn, ids["event"]) is None
        assert conn.execute("SELECT 1 FROM orders WHERE id = %s", (ids["order"],)).fetchone() is None


@check("commit: the order and its event are there; a consumer claims and completes it (SQL API)")
def _():
    with connect() as conn:
        order_id, event_id = place_order(conn, "SKU-1", 2, "psycopg-commit", "example.psycopg.order.placed")
        assert where_is(conn, event_id) == ("outbox", "created")
        (got,) = claim_and_complete(conn, "example.psycopg.order.placed")
        assert got[0] == event_id
        assert got[2] == {"orderId": order_id, "sku": "SKU-1", "quantity": 2, "customer": "psycopg-commit"}
        assert got[4] == 1  # attempt
        assert where_is(conn, event_id) == ("archive", "completed")


@check("payload round-trips exactly: unicode (astral, combining), nesting, integers beyond 2^53 and 2^63 stay exact in Python")
def _():
    with connect() as conn:
        with conn.transaction():
            event_id = publish(conn, "example.psycopg.payload", FIXTURE)
        same, beyond, huge = conn.execute(
            """SELECT payload = %s::jsonb, payload->'numbers'->>'beyond_2_53', payload->'numbers'->>'huge'
                 FROM outbox_events WHERE id = %s""", (FIXTURE_TEXT, event_id)).fetchone()
        assert same, "stored payload equals the fixture (compared as jsonb)"
        assert (beyond, huge) == ("9007199254740993", "123456789012345678901234567890")
        (got,) = claim_and_complete(conn, "example.psycopg.payload")
        payload = got[2]
        assert payload == FIXTURE
        numbers = payload["numbers"]
        assert numbers["beyond_2_53"] == 2**53 + 1
        assert numbers["int64_max"] == 2**63 - 1
        assert numbers["negative"] == -(2**53 + 1)
        assert numbers["huge"] == 123456789012345678901234567890
        # jsonb keeps numeric values, not their spelling: 1e+21 comes back as the integer 10**21.
        assert numbers["exponent"] == 10**21 and isinstance(numbers["exponent"], int)
        assert numbers["decimal"] == 0.1
        customer = payload["customer"]
        assert customer["combining"] == "e\u0301 a\u030a n\u0303"  # not normalized to NFC
        assert customer["astral"] == "\U0001d11e \U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 \U0001f600"
        assert len(customer["emoji"]) == 4
        assert payload["nested"]["a"]["b"]["c"]["d"] == [1, [2, [3, {"e": None}]]]


@check("jsonb refuses the NUL character U+0000 in a string (SQLSTATE 22P05): the transaction rolls back")
def _():
    with connect() as conn:
        try:
            with conn.transaction():
                publish(conn, "example.psycopg.nul", {"text": "a\u0000b"})
            raise AssertionError("published a payload with U+0000")
        except errors.UntranslatableCharacter:
            pass
        assert conn.execute("SELECT count(*) FROM outbox_events WHERE type = 'example.psycopg.nul'").fetchone() == (0,)


@check("the same statements run many times through PgBouncer: no server-side prepared statement (prepare_threshold=None)")
def _():
    n = 10 if QUICK else 100
    with connect() as conn:
        ids = []
        for i in range(n):
            with conn.transaction():
                ids.append(publish(conn, "example.psycopg.repeat", {"i": i}))
        got = claim_and_complete(conn, "example.psycopg.repeat", n)
        assert sorted(r[0] for r in got) == sorted(ids)
        assert sorted(r[2]["i"] for r in got) == list(range(n))


@check("concurrent publishers (threads, one connection each) through PgBouncer: every commit carries its event")
def _():
    n = 5 if QUICK else 50
    ids, failures = [], []

    def worker(k):
        try:
            with connect() as conn:
                for i in range(n):
                    ids.append(place_order(conn, f"SKU-T{k}-{i}", 1, f"psycopg-{k}", "example.psycopg.concurrent")[1])
        except Exception as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    with connect() as conn:
        got = claim_and_complete(conn, "example.psycopg.concurrent", 4 * n)
    assert sorted(r[0] for r in got) == sorted(ids) and len(ids) == 4 * n


@check("seed 003 mistake (publish on a second connection, not in the transaction): the WARNING reaches the client")
def _():
    notices = []
    with connect() as tx_conn, connect() as other:
        other.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.sqlstate, d.message_primary, d.message_hint)))
        with tx_conn.transaction():
            tx_conn.execute("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-G', 1, 'psycopg-guard')")
            event_id = publish(other, "example.psycopg.guard", {"customer": "psycopg-guard"})  # the mistake
            raise psycopg.Rollback()  # roll the transaction back
        warning = [n for n in notices if n[1] == "25P01"]
        assert warning, notices
        severity, _, message, hint = warning[0]
        assert severity == "WARNING" and message == "outbox_publish called outside a transaction block"
        assert "same transaction (and connection)" in hint
        # The bug the warning names: the order rolled back, the event did not.
        assert where_is(tx_conn, event_id) == ("outbox", "created")
        assert tx_conn.execute("SELECT count(*) FROM orders WHERE customer = 'psycopg-guard'").fetchone() == (0,)
        claim_and_complete(tx_conn, "example.psycopg.guard")


@check("seed 003 mistake with outbox.require_transaction = error (ALTER ROLE, no session SET): NoActiveSqlTransaction, nothing stored")
def _():
    url = os.environ["DATABASE_URL_STRICT"]
    with connect(url) as tx_conn, connect(url) as other:
        with tx_conn.transaction():
            tx_conn.execute("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-G', 1, 'psycopg-strict')")
            try:
                publish(other, "example.psycopg.guard.strict", {"customer": "psycopg-strict"})
                raise AssertionError("the guard let a publish outside a transaction through")
            except errors.NoActiveSqlTransaction as e:
                assert e.diag.message_primary == "outbox_publish called outside a transaction block"
            # The right way works on the strict role too: same connection, in the transaction.
            good = publish(tx_conn, "example.psycopg.guard.strict", {"customer": "psycopg-strict", "ok": True})
        got = claim_and_complete(tx_conn, "example.psycopg.guard.strict")
        assert [r[0] for r in got] == [good]


@check("transaction claims (outbox_claim_xact): a consumer that fails or whose backend is terminated gives the batch back untouched; then handler writes and completions commit together, a failing handler's event is retried")
def _():
    with connect() as conn:
        with conn.transaction():
            good = [publish(conn, "example.psycopg.xact", {"n": n}) for n in range(3)]
            poison = publish(conn, "example.psycopg.xact", {"n": 99, "poison": True})

        def handle(conn, event):
            if event.payload.get("poison"):
                raise ValueError("cannot project a poison event")
            conn.execute("INSERT INTO deliveries (event_id, type, payload, attempt) VALUES (%s, %s, %s, %s)",
                         (event.id, event.type, Jsonb(event.payload), event.attempt))

        class Died(Exception):
            pass

        # A consumer that handles the first event, then dies before completing.
        try:
            with conn.transaction():
                rows = conn.execute("SELECT id, type, payload, attempt FROM outbox_claim_xact(10, 'psycopg-xact', "
                                    "ARRAY['example.psycopg.xact'])").fetchall()
                assert len(rows) == 4, f"claimed {len(rows)} events, not 4"
                conn.execute("INSERT INTO deliveries (event_id, type, payload, attempt) VALUES (%s, %s, %s, %s)",
                             (rows[0][0], rows[0][1], Jsonb(rows[0][2]), rows[0][3]))
                raise Died()
        except Died:
            pass
        all_ids = good + [poison]
        assert conn.execute("SELECT count(*) FROM deliveries WHERE event_id = ANY(%s)", (all_ids,)).fetchone() == (0,)
        assert conn.execute("""SELECT count(*) FROM outbox_events
                                WHERE id = ANY(%s) AND status = 'created' AND retry_count = 0""",
                            (all_ids,)).fetchone() == (4,)

        # A consumer whose session ends while it holds the batch (its backend
        # terminated): it died with them, as one whose lease expires: the
        # events are due again at once, each with one failed attempt counted.
        # (Not `with connect()`: leaving that block would COMMIT on the dead connection.)
        doomed = connect()
        try:
            doomed.execute("BEGIN")
            (pid,) = doomed.execute("SELECT pg_backend_pid()").fetchone()
            rows = doomed.execute("SELECT id FROM outbox_claim_xact(10, 'psycopg-doomed', "
                                  "ARRAY['example.psycopg.xact'])").fetchall()
            assert len(rows) == 4, f"claimed {len(rows)} events, not 4"
            # While it lives, nobody else gets them.
            with conn.transaction():
                assert conn.execute("SELECT count(*) FROM outbox_claim_xact(10, 'psycopg-other', "
                                    "ARRAY['example.psycopg.xact'])").fetchone() == (0,)
            (killed,) = conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
            assert killed, "the consumer's backend was terminated"
        finally:
            doomed.close()
        assert conn.execute("""SELECT count(*) FROM outbox_events
                                WHERE id = ANY(%s) AND status = 'created' AND retry_count = 1
                                  AND last_error LIKE 'the session of psycopg-doomed ended%%'""",
                            (all_ids,)).fetchone() == (4,)

        done, failed = consume_in_transaction(conn, handle, consumer="psycopg-xact", types=["example.psycopg.xact"])
        assert sorted(done) == sorted(good) and failed == [poison], (done, failed)
        assert [where_is(conn, i) for i in good] == [("archive", "completed")] * 3
        assert conn.execute("SELECT count(*), max(attempt) FROM deliveries WHERE event_id = ANY(%s)",
                            (good,)).fetchone() == (3, 2)
        status, retries, error = conn.execute(
            "SELECT status::text, retry_count, last_error FROM outbox_events WHERE id = %s", (poison,)).fetchone()
        assert (status, retries, error) == ("created", 2, "ValueError: cannot project a poison event"), (status, retries, error)


@check("worker delivery: a committed event reaches a SQL subscription handler, payload intact")
def _():
    with connect() as conn:
        if not conn.execute("SELECT to_regproc('outbox_subscribe') IS NOT NULL").fetchone()[0]:
            raise Skip(NO_SUBSCRIPTIONS)
        with conn.transaction():
            conn.execute("INSERT INTO orders (sku, quantity, customer) VALUES ('SKU-D', 1, 'psycopg-delivery')")
            event_id = publish(conn, "example.delivery.psycopg", FIXTURE)
        deadline = time.time() + 15
        row = None
        while time.time() < deadline and row is None:
            row = conn.execute("SELECT payload, payload = %s::jsonb FROM deliveries WHERE event_id = %s",
                               (FIXTURE_TEXT, event_id)).fetchone()
            if row is None:
                time.sleep(0.05)
        assert row is not None, "the handler recorded the event"
        assert row[1] and row[0] == FIXTURE


def main():
    if "DATABASE_URL" not in os.environ:
        print("not ok - DATABASE_URL is set (run examples/run.sh)")
        return 1
    failed = 0
    for description, fn in checks:
        try:
            fn()
            print(f"ok - {description}", flush=True)
        except Skip as s:
            print(f"skip - {description} ({s})", flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"not ok - {description}", flush=True)
            for line in traceback.format_exc().splitlines():
                print(f"#   {line}", flush=True)
    print(f"# psycopg {psycopg.__version__}, libpq {psycopg.pq.version()}, implementation {psycopg.pq.__impl__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
