"""Analytics: when a ticket was resolved, and the indexes the support report reads by.

``tickets.resolved_at`` is set when a ticket's status becomes resolved (``solved``) and
cleared when it is reopened; ``updated_at`` moves with any edit (priority, assignee), so it
cannot time a resolution. Tickets already solved get their ``updated_at`` as the best
known resolution time.

Indexes: conversations by start (``created_at``), events by type and time (the report
reads the window's shopper messages, actions, bot answers and ratings), handoffs by
request time, tickets by creation and resolution time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE tickets SET resolved_at = updated_at WHERE status = 'solved'")
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index("ix_tickets_resolved_at", "tickets", ["resolved_at"])
    op.create_index("ix_conversations_created_at", "conversations", ["created_at"])
    op.create_index(
        "ix_conversation_events_type_timestamp", "conversation_events", ["type", "timestamp"]
    )
    op.create_index("ix_handoffs_requested_at", "handoffs", ["requested_at"])


def downgrade() -> None:
    op.drop_index("ix_handoffs_requested_at", table_name="handoffs")
    op.drop_index("ix_conversation_events_type_timestamp", table_name="conversation_events")
    op.drop_index("ix_conversations_created_at", table_name="conversations")
    op.drop_index("ix_tickets_resolved_at", table_name="tickets")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), as in 0003.
    op.drop_column("tickets", "resolved_at")
