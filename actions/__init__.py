"""The demo store's own custom actions (a Rasa-style project's ``actions/`` package).

The demo store needs nothing beyond the store actions Clerk ships in
``bot.store_actions`` (order look-ups, cancellations, returns, exchanges, address changes,
tickets, recommendations). A store adds its own rasa-sdk actions here; an action whose
``name()`` matches a built-in one replaces it. Clerk loads this package in process, and
``clerk actions`` serves it (with the built-ins) as a rasa-sdk action server.
"""
