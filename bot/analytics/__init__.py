"""Support analytics computed from the tracker events with SQL aggregates: conversations,
containment, handoffs, fallbacks, intents, guard interventions, tickets and CSAT.

Sits beside ``bot.knowledge``: it reads the store's tables (``bot.store``) only.
``report.build_report`` computes the figures; ``charts`` draws them (matplotlib, Agg);
``period`` reads the windows people type.
"""

from bot.analytics.period import parse_window
from bot.analytics.report import Report, build_report

__all__ = ["Report", "build_report", "parse_window"]
