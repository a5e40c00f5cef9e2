"""Conversation leases: which turn holds a conversation, and until when.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("conversations", sa.Column("lease_owner", sa.String(length=32), nullable=True))
    op.add_column("conversations", sa.Column("lease_until", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of the table would
    # cascade-delete its events.
    op.drop_column("conversations", "lease_until")
    op.drop_column("conversations", "lease_owner")
