"""Publishing outbox events with psycopg 3: the few lines to copy.

outbox_publish() joins the transaction its connection is in: call publish()
with the connection (or a cursor of it) inside ``with conn.transaction():``
and the event commits or rolls back with the business rows.
"""
from psycopg.types.json import Jsonb


def publish(conn, type, payload, *, ordering_key=None, headers=None, deliver_at=None, delay=None, id=None):
    """Publish an event in the current transaction of conn; returns its id (uuid.UUID).

    payload: any JSON-serializable value (Python ints of any size stay exact).
    """
    row = conn.execute(
        """SELECT outbox_publish(%s, %s, ordering_key => %s, headers => %s,
                                 deliver_at => %s, delay => %s::interval, id => %s)""",
        (type, Jsonb(payload), ordering_key, None if headers is None else Jsonb(headers), deliver_at, delay, id),
    ).fetchone()
    return row[0]


def consume_in_transaction(conn, handle, *, batch_size=100, consumer=None, types=None):
    """Claim a batch for one transaction, handle each event in it, complete the handled ones.

    For a consumer whose effects are writes in this same database: handle(conn, event)
    runs in a savepoint of the claiming transaction, so its writes commit together with
    the event's completion (exactly once). If it raises, its writes are rolled back and
    the attempt is recorded with outbox_fail() (retried with backoff, failed after the
    maximum). If the process dies or the transaction fails, everything rolls back and the
    events are due again at once. event is a named tuple (id, type, payload, headers,
    ordering_key, occurred_at, attempt, lease_token). Returns (completed ids, failed ids).
    """
    from psycopg.rows import namedtuple_row

    done, failed = [], []
    with conn.transaction():
        with conn.cursor(row_factory=namedtuple_row) as cur:
            events = cur.execute(
                """SELECT id, type, payload, headers, ordering_key, occurred_at, attempt, lease_token
                     FROM outbox_claim_xact(%s, %s, %s)""", (batch_size, consumer, types)).fetchall()
        for event in events:
            try:
                with conn.transaction():  # a savepoint
                    handle(conn, event)
                done.append(event.id)
            except Exception as e:  # noqa: BLE001 -- any handler error is a failed attempt
                conn.execute("SELECT outbox_fail(%s, %s, %s)", (event.id, event.lease_token, f"{type(e).__name__}: {e}"))
                failed.append(event.id)
        if done:
            conn.execute("SELECT outbox_complete(%s::uuid[], %s)", (done, events[0].lease_token))
    return done, failed
