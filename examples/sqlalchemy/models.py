"""The tables as SQLAlchemy 1.4 declarative models.

orders is the business table. The outbox tables belong to the extension: read
them with these models, write them only through its functions (outbox_publish,
outbox_claim, ...), and keep them out of metadata.create_all() and Alembic
(include_object / include_name).
"""
from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, Text, func
from sqlalchemy.dialects.postgresql import ENUM, JSONB, UUID
from sqlalchemy.orm import declarative_base

Base = declarative_base()

# The extension's enum: never created or dropped by SQLAlchemy.
OutboxStatus = ENUM("created", "active", "completed", "failed", name="outbox_status", create_type=False)


class Order(Base):
    __tablename__ = "orders"

    id = Column(BigInteger, Identity(always=True), primary_key=True)
    sku = Column(Text, nullable=False)
    quantity = Column(Integer, nullable=False)
    customer = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class OutboxEvent(Base):
    """Events published and not yet delivered (created, active) or given up (failed). Read-only."""
    __tablename__ = "outbox_events"

    id = Column(UUID(as_uuid=True), primary_key=True)
    seq = Column(BigInteger, nullable=False)
    type = Column(Text, nullable=False)
    payload = Column(JSONB, nullable=False)
    headers = Column(JSONB, nullable=False)
    ordering_key = Column(Text)
    status = Column(OutboxStatus, nullable=False)
    occurred_at = Column(DateTime(timezone=True), nullable=False)
    available_at = Column(DateTime(timezone=True), nullable=False)
    retry_count = Column(Integer, nullable=False)
    dispatched_at = Column(DateTime(timezone=True))


class OutboxEventArchive(Base):
    """Delivered (completed) or discarded (failed) events; partitioned by completed_on. Read-only."""
    __tablename__ = "outbox_events_archive"

    # The key (id, completed_on) is declared on each partition.
    id = Column(UUID(as_uuid=True), primary_key=True)
    completed_on = Column(DateTime(timezone=True), primary_key=True)
    seq = Column(BigInteger, nullable=False)
    type = Column(Text, nullable=False)
    payload = Column(JSONB, nullable=False)
    status = Column(OutboxStatus, nullable=False)


class Delivery(Base):
    """What the examples' subscription handler records (examples/setup.sql)."""
    __tablename__ = "deliveries"

    event_id = Column(UUID(as_uuid=True), primary_key=True)
    type = Column(Text, nullable=False)
    payload = Column(JSONB, nullable=False)
    attempt = Column(Integer, nullable=False)
