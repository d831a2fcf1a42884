"""Publishing outbox events with SQLAlchemy 1.4 (psycopg2): the few lines to copy.

outbox_publish() joins the transaction its connection is in: call publish()
with the Session inside ``with session.begin():`` (after the business rows,
or before: the Session flushes them in the same transaction) and the event
commits or rolls back with them. A second Session, or engine.connect(), is a
transaction of its own: never publish through it.
"""
import json

from sqlalchemy import text

# CAST(... AS ...), not ::, next to bind parameters: text() reads ":name::type" as no parameter.
_PUBLISH = text(
    """SELECT outbox_publish(:type, CAST(:payload AS jsonb), ordering_key => :ordering_key,
                             headers => CAST(:headers AS jsonb), deliver_at => :deliver_at,
                             delay => CAST(:delay AS interval), id => CAST(:id AS uuid))"""
)


def publish(session, type, payload, *, ordering_key=None, headers=None, deliver_at=None, delay=None, id=None):
    """Publish an event in the current transaction of session (or connection); returns its id (a uuid.UUID).

    payload: any JSON-serializable value (Python ints of any size stay exact).
    """
    return session.execute(_PUBLISH, {
        "type": type,
        "payload": json.dumps(payload, ensure_ascii=False),
        "ordering_key": ordering_key,
        "headers": None if headers is None else json.dumps(headers, ensure_ascii=False),
        "deliver_at": deliver_at,
        "delay": delay,
        "id": None if id is None else str(id),
    }).scalar_one()
