"""stripe checkout: server-only checkout attempts and processed webhook events

Revision ID: 0002_stripe
Revises: 0001
Create Date: 2026-11-25 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clinic_desktop.models.types import UTCDateTime

revision = "0002_stripe"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "srv_stripe_checkout",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("clinic_id", sa.String(length=36), nullable=False),
        sa.Column("bill_id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=False),
        sa.Column("desk_code", sa.String(length=3), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("payment_intent", sa.String(length=255), nullable=True),
        sa.Column("refund_payment_id", sa.String(length=36), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_srv_stripe_checkout")),
        sa.UniqueConstraint("session_id", name=op.f("uq_srv_stripe_checkout_session_id")),
    )
    op.create_index(
        op.f("ix_srv_stripe_checkout_bill_id"), "srv_stripe_checkout", ["bill_id"], unique=False
    )
    op.create_index(
        op.f("ix_srv_stripe_checkout_clinic_id"), "srv_stripe_checkout", ["clinic_id"], unique=False
    )
    op.create_table(
        "srv_stripe_event",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("clinic_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=80), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_srv_stripe_event")),
    )


def downgrade() -> None:
    op.drop_table("srv_stripe_event")
    op.drop_index(op.f("ix_srv_stripe_checkout_clinic_id"), table_name="srv_stripe_checkout")
    op.drop_index(op.f("ix_srv_stripe_checkout_bill_id"), table_name="srv_stripe_checkout")
    op.drop_table("srv_stripe_checkout")
