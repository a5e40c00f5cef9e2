"""Human handoff: the queue, claiming, the relay between shopper and agent, agent accounts.

Who owns what:

- The conversation's tracker is the truth. Every handoff step is a ``HandoffEvent``
  (``requested``, ``claimed``, ``agent_message``, ``note``, ``returned``, ``closed``)
  appended under the conversation's lock in one transaction with the rows derived from
  it (``conversations.handoff_status``, ``handoffs``, ``outbox``). ``desk.HandoffDesk``
  holds those step functions; the dialogue manager runs them (``DialogueManager.run_external``)
  so they serialise with shopper turns.
- Claiming is decided by the database: a conditional ``UPDATE conversations SET
  handoff_status='claimed' WHERE id=? AND handoff_status='requested'``; its row count says
  who won, on SQLite and PostgreSQL, across processes.
- Agent -> shopper delivery goes through ``outbox.Outbox``: a row per message, written in
  the step's transaction, then pushed by the ``ShopperDelivery`` registered for the
  conversation's channel (widget, Socket.IO, Telegram). Channels without one (REST) keep
  the rows pending until the client polls ``GET /webhooks/rest/messages?sender=ID``.
- ``outbox.Relay`` is the in-process pub/sub that tells the console (and the outbox
  worker) that a conversation in handoff changed, within one process; ``outbox.RedisRelay``
  does the same across workers and hosts (``CLERK_REDIS_URL``) behind the same methods.
- ``triggers`` decides when the bot hands off on its own (misses, severe complaints,
  failed actions, out-of-scope requests); ``agents`` holds console accounts and sessions.
"""
