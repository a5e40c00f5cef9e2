"""Product recommendations: candidates from co-purchase, content similarity and popularity,
personalised by the shopper's orders and the conversation, filtered and explained.

Sits beside ``bot.knowledge``: it reads the store's tables (``bot.store``) and is handed
product vectors by its caller, so it imports nothing above the store.
"""
