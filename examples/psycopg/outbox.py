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
