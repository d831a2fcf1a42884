"""SQLAlchemy 1.4 (Debian's python3-sqlalchemy on python3-psycopg2) publishing inside its transaction, through PgBouncer.

Prints one line per check: "ok - ...", "not ok - ..." or "skip - ... (why)".
Run by examples/run.sh (which sets DATABASE_URL).
"""
import json
import os
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

import psycopg2
import sqlalchemy
from sqlalchemy import select, text
from sqlalchemy.exc import DataError

from models import Delivery, Order, OutboxEvent, OutboxEventArchive
from outbox import publish
from place_order import new_sessionmaker, place_order

QUICK = os.environ.get("OUTBOX_EXAMPLES_QUICK") == "1"
FIXTURE_TEXT = (Path(__file__).resolve().parent.parent / "payload.json").read_text(encoding="utf-8")
FIXTURE = json.loads(FIXTURE_TEXT)
NO_SUBSCRIPTIONS = ("the installed extension has no subscription API (outbox_subscribe): "
                    "worker delivery is checked once the relay is built")

Session = None  # set in main()


class Skip(Exception):
    pass


checks = []


def check(description):
    def register(fn):
        checks.append((description, fn))
        return fn
    return register


def where_is(session, event_id):
    """Where the event is, read with the models: ('outbox', status), ('archive', status) or None."""
    live = session.execute(select(OutboxEvent.status).where(OutboxEvent.id == event_id)).scalars().all()
    archived = session.execute(select(OutboxEventArchive.status).where(OutboxEventArchive.id == event_id)).scalars().all()
    assert len(live) + len(archived) <= 1, f"event {event_id} is in {len(live) + len(archived)} places"
    if live:
        return ("outbox", live[0])
    if archived:
        return ("archive", archived[0])
    return None


def claim_and_complete(type, expected=1):
    """Claim the events of one type through the SQL API and complete them (each call its own transaction)."""
    got = []
    for _ in range(50):
        with Session() as session, session.begin():
            rows = session.execute(text(
                """SELECT id, type, payload, payload::text AS payload_text, attempt, lease_token
                     FROM outbox_claim(batch_size => 100, lease => '30 seconds', consumer => 'sqlalchemy-test',
                                       types => ARRAY[CAST(:type AS text)])"""), {"type": type}).all()
        for row in rows:
            with Session() as session, session.begin():
                n = session.execute(text("SELECT outbox_complete(ARRAY[CAST(:id AS uuid)], :token)"),
                                    {"id": str(row.id), "token": row.lease_token}).scalar_one()
            assert n == 1, f"completed {n} events, not 1"
            got.append(row)
        if len(got) >= expected:
            break
        time.sleep(0.05)
    return got


@check("rollback (an exception leaves `with session.begin()`): the order and the event published in it do not exist")
def _():
    class PaymentDeclined(Exception):
        pass

    ids = {}
    try:
        with Session() as session, session.begin():
            order = Order(sku="SKU-RB", quantity=1, customer="sqlalchemy-rollback")
            session.add(order)
            session.flush()
            ids["order"] = order.id
            ids["event"] = publish(session, "example.sqlalchemy.order.placed", {"orderId": order.id})
            raise PaymentDeclined()
    except PaymentDeclined:
        pass
    assert ids["order"] and isinstance(ids["event"], uuid.UUID)
    with Session() as session:
        assert where_is(session, ids["event"]) is None
        assert session.get(Order, ids["order"]) is None


@check("commit: the order and its event are there (read with the models); a consumer claims and completes it (SQL API)")
def _():
    order_id, event_id = place_order(Session, "SKU-1", 2, "sqlalchemy-commit", "example.sqlalchemy.order.placed")
    with Session() as session:
        assert session.get(Order, order_id).customer == "sqlalchemy-commit"
        event = session.get(OutboxEvent, event_id)
        assert event.status == "created" and event.ordering_key == "customer:sqlalchemy-commit"
        assert event.payload == {"orderId": order_id, "sku": "SKU-1", "quantity": 2, "customer": "sqlalchemy-commit"}
        seq = event.seq
    (got,) = claim_and_complete("example.sqlalchemy.order.placed")
    assert got.id == event_id and got.attempt == 1
    with Session() as session:
        archived = session.execute(select(OutboxEventArchive).where(OutboxEventArchive.id == event_id)).scalar_one()
        assert (archived.status, archived.seq) == ("completed", seq)


@check("payload round-trips exactly: unicode (astral, combining), nesting, integers beyond 2^53 and 2^63 stay exact in Python")
def _():
    with Session() as session, session.begin():
        event_id = publish(session, "example.sqlalchemy.payload", FIXTURE)
    with Session() as session:
        same, beyond = session.execute(text(
            """SELECT payload = CAST(:fixture AS jsonb), payload->'numbers'->>'beyond_2_53'
                 FROM outbox_events WHERE id = CAST(:id AS uuid)"""), {"fixture": FIXTURE_TEXT, "id": str(event_id)}).one()
        assert same, "stored payload equals the fixture (compared as jsonb)"
        assert beyond == "9007199254740993"
        assert session.get(OutboxEvent, event_id).payload == FIXTURE  # read through the JSONB column
    (got,) = claim_and_complete("example.sqlalchemy.payload")
    payload = got.payload
    assert payload == FIXTURE
    numbers = payload["numbers"]
    assert numbers["beyond_2_53"] == 2**53 + 1
    assert numbers["int64_max"] == 2**63 - 1
    assert numbers["huge"] == 123456789012345678901234567890
    assert numbers["exponent"] == 10**21 and isinstance(numbers["exponent"], int)  # jsonb keeps values, not spelling
    customer = payload["customer"]
    assert customer["combining"] == "e\u0301 a\u030a n\u0303"  # not normalized to NFC
    assert customer["astral"] == "\U0001d11e \U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 \U0001f600"
    assert len(customer["emoji"]) == 4


@check("jsonb refuses the NUL character U+0000 in a string (SQLSTATE 22P05): the transaction rolls back, nothing is published")
def _():
    try:
        with Session() as session, session.begin():
            session.add(Order(sku="SKU-NUL", quantity=1, customer="sqlalchemy-nul"))
            publish(session, "example.sqlalchemy.nul", {"text": "a\u0000b"})
        raise AssertionError("published a payload with U+0000")
    except DataError as e:
        assert isinstance(e.orig, psycopg2.errors.UntranslatableCharacter), type(e.orig)
    with Session() as session:
        assert session.execute(text("SELECT count(*) FROM outbox_events WHERE type = 'example.sqlalchemy.nul'")).scalar_one() == 0
        assert session.execute(select(Order).where(Order.customer == "sqlalchemy-nul")).first() is None


@check("savepoint (session.begin_nested()): its rollback drops the event published in it; the outer transaction commits its own")
def _():
    class InnerFailure(Exception):
        pass

    ids = {}
    with Session() as session, session.begin():
        ids["outer"] = publish(session, "example.sqlalchemy.nested", {"level": "outer"})
        try:
            with session.begin_nested():
                ids["inner"] = publish(session, "example.sqlalchemy.nested", {"level": "inner"})
                raise InnerFailure()
        except InnerFailure:
            pass
    with Session() as session:
        assert where_is(session, ids["inner"]) is None
        assert where_is(session, ids["outer"]) == ("outbox", "created")
    got = claim_and_complete("example.sqlalchemy.nested")
    assert [r.id for r in got] == [ids["outer"]]


@check("a second Session is a transaction of its own: publishing through it is not caught by the guard (SQLAlchemy always begins one) and outlives the rollback")
def _():
    notices_before = None
    with Session() as business:
        try:
            with business.begin():
                business.add(Order(sku="SKU-2S", quantity=1, customer="sqlalchemy-second-session"))
                business.flush()
                with Session() as other, other.begin():  # the mistake
                    stray = publish(other, "example.sqlalchemy.second.session", {"customer": "sqlalchemy-second-session"})
                    dbapi_conn = other.connection().connection.dbapi_connection
                    notices_before = list(dbapi_conn.notices)
                raise RuntimeError("payment declined")
        except RuntimeError:
            pass
    assert not [n for n in notices_before if "outside a transaction" in n], notices_before
    with Session() as session:
        assert session.execute(select(Order).where(Order.customer == "sqlalchemy-second-session")).first() is None
        assert where_is(session, stray) == ("outbox", "created")  # the bug: the order rolled back, the event did not
    claim_and_complete("example.sqlalchemy.second.session")  # tidy up the stray event


@check("concurrent publishers (threads, one Session each) through PgBouncer: every commit carries its event")
def _():
    n = 5 if QUICK else 50
    ids, failures = [], []

    def worker(k):
        try:
            for i in range(n):
                ids.append(place_order(Session, f"SKU-T{k}-{i}", 1, f"sqlalchemy-{k}", "example.sqlalchemy.concurrent")[1])
        except Exception as e:  # noqa: BLE001
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    got = claim_and_complete("example.sqlalchemy.concurrent", 4 * n)
    assert len(ids) == 4 * n and sorted(r.id for r in got) == sorted(ids)


@check("worker delivery: a committed event reaches a SQL subscription handler, payload intact")
def _():
    with Session() as session:
        if not session.execute(text("SELECT to_regproc('outbox_subscribe') IS NOT NULL")).scalar_one():
            raise Skip(NO_SUBSCRIPTIONS)
    with Session() as session, session.begin():
        session.add(Order(sku="SKU-D", quantity=1, customer="sqlalchemy-delivery"))
        event_id = publish(session, "example.delivery.sqlalchemy", FIXTURE)
    deadline = time.time() + 15
    delivered = None
    while time.time() < deadline and delivered is None:
        with Session() as session:
            delivered = session.get(Delivery, event_id)
            if delivered is not None:
                same = session.execute(text("SELECT payload = CAST(:f AS jsonb) FROM deliveries WHERE event_id = CAST(:id AS uuid)"),
                                       {"f": FIXTURE_TEXT, "id": str(event_id)}).scalar_one()
        if delivered is None:
            time.sleep(0.05)
    assert delivered is not None, "the handler recorded the event"
    assert delivered.attempt == 1 and delivered.payload == FIXTURE and same


def main():
    global Session
    if "DATABASE_URL" not in os.environ:
        print("not ok - DATABASE_URL is set (run examples/run.sh)")
        return 1
    Session = new_sessionmaker()
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
    print(f"# SQLAlchemy {sqlalchemy.__version__}, psycopg2 {psycopg2.__version__}")
    Session.kw["bind"].dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
