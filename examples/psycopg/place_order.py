"""A runnable example: place an order and announce it, in one transaction.

    DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples python3 place_order.py SKU-1 2 alice
"""
import os
import sys

import psycopg

from outbox import publish


def connect(url=None):
    # Through PgBouncer in transaction pooling (before 1.21): no server-side
    # prepared statements (prepare_threshold=None), autocommit with explicit
    # transaction blocks, nothing kept in the session.
    return psycopg.connect(url or os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=None)


def place_order(conn, sku, quantity, customer, event_type="order.placed"):
    with conn.transaction():
        (order_id,) = conn.execute(
            "INSERT INTO orders (sku, quantity, customer) VALUES (%s, %s, %s) RETURNING id",
            (sku, quantity, customer),
        ).fetchone()
        event_id = publish(conn, event_type,
                           {"orderId": order_id, "sku": sku, "quantity": quantity, "customer": customer},
                           ordering_key=f"customer:{customer}")
    return order_id, event_id


if __name__ == "__main__":
    sku, quantity, customer = (sys.argv[1:] + ["SKU-1", "1", "alice"][len(sys.argv) - 1:])[:3]
    with connect() as conn:
        print(place_order(conn, sku, int(quantity), customer))
