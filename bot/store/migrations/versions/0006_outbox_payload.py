"""Outbox: a structured payload beside the text.

``outbox.payload`` (nullable JSON) holds what a message carries besides its words (the CSAT
request's thumbs, ``Reply.custom``); ``text`` keeps only the words, so a worker that does
not know a kind still sends the shopper plain text, never JSON.

Rows of kind ``feedback`` written before this revision held ``{"text", "custom"}`` as JSON
in ``text``: they are split into ``text`` and ``payload`` here (a row whose text is not such
JSON is left as it is; the outbox sends it as plain text and counts it).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("payload", sa.JSON(), nullable=True))
    outbox = sa.table(
        "outbox",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("text", sa.Text),
        sa.column("payload", sa.JSON),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(outbox.c.id, outbox.c.text).where(
            outbox.c.kind == "feedback", outbox.c.payload.is_(None)
        )
    ).all()
    for row_id, stored_text in rows:
        try:
            stored = json.loads(stored_text)
        except (TypeError, ValueError):
            continue
        if not isinstance(stored, dict) or not isinstance(stored.get("custom"), dict):
            continue
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id == row_id)
            .values(text=str(stored.get("text") or ""), payload=stored["custom"])
        )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35), as in 0003. Feedback requests
    # still pending lose their thumbs (their text stays readable).
    op.drop_column("outbox", "payload")
