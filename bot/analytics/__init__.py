"""Support analytics computed from the tracker events with SQL aggregates: conversations,
containment, handoffs, fallbacks, intents, guard interventions, tickets and CSAT.

Sits beside ``bot.knowledge``: it reads the store's tables (``bot.store``) only.
"""
