"""Product recommendations: candidates from co-purchase, content similarity and popularity,
personalised by the shopper's orders and the conversation, filtered and explained.

Sits beside ``bot.knowledge``: it reads the store's tables (``bot.store``) and is handed an
embedding function by its caller (``bot.app``: the search encoder's ``encode``), so it
imports nothing above the store.

- ``store``: the catalog, a shopper's history and purchase counts, one short query each;
- ``wishes``: what the shopper asked for in the conversation (products, kinds, options,
  price range), read against the catalog;
- ``scoring``: the three signals, their blend (``Weights``) and which one a reason names;
  the same code ranks in ``benchmarks/recs_eval.py``;
- ``engine``: ``Recommender.recommend(Query) -> Recommendations``, each ``Suggestion``
  with its ``Reason`` (data; ``bot.store_actions.recommendations`` words it).
"""
