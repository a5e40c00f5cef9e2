"""The agent console, served at ``/console``: login, the live queue, conversation views
with takeover, replies, notes, hand-back and close, tickets, and agent administration.
``app.Console`` builds its routes; ``app.py`` mounts them."""
