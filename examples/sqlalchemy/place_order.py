"""A runnable example: place an order and announce it, in one SQLAlchemy transaction.

    DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples python3 place_order.py SKU-1 2 alice
"""
import os
import sys

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from models import Order
from outbox import publish


def new_sessionmaker(url=None):
    # postgresql:// means psycopg2. Through PgBouncer in transaction pooling:
    # psycopg2 prepares no statements on the server, and every Session works
    # in a transaction (nothing kept in the server session between them).
    engine = create_engine(url or os.environ["DATABASE_URL"], future=True, pool_size=4, pool_pre_ping=True)
    return sessionmaker(engine, future=True)


def place_order(Session, sku, quantity, customer, event_type="order.placed"):
    with Session() as session, session.begin():
        order = Order(sku=sku, quantity=quantity, customer=customer)
        session.add(order)
        session.flush()  # INSERT ... RETURNING id, in this transaction
        event_id = publish(session, event_type,
                           {"orderId": order.id, "sku": sku, "quantity": quantity, "customer": customer},
                           ordering_key=f"customer:{customer}")
        order_id = order.id
    return order_id, event_id


if __name__ == "__main__":
    sku, quantity, customer = (sys.argv[1:] + ["SKU-1", "1", "alice"][len(sys.argv) - 1:])[:3]
    print(place_order(new_sessionmaker(), sku, int(quantity), customer))
