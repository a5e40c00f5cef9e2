"""The store's custom actions, written against rasa-sdk.

Two ways to run them, same code:

- In Clerk's engine: ``build_actions(db, currency=..., recommender=...)`` returns one
  instance of every action, all using the engine's ``Database`` and the store's currency
  (and the recommendations its ``Recommender``); register them with
  ``ActionExecutor.register_action``.
- In a separate action server: ``python -m rasa_sdk --actions bot.store_actions`` (or
  ``ActionExecutor().register_package("bot.store_actions")``) finds the concrete ``Action`` classes
  and builds them without arguments; they open ``database_from_env()``
  (``CLERK_DATABASE_URL``) and read the currency (``CLERK_CURRENCY``) on first use; the
  recommendation action builds its ``Recommender`` from the settings on first use.

Actions (names as in ``training_data/domain.yml``):

- form validation: ``validate_order_status_form``, ``validate_cancel_order_form``,
  ``validate_return_order_form``, ``validate_exchange_order_form``,
  ``validate_change_address_form``, ``validate_complaint_form``
- form questions: ``action_ask_order_id``, ``action_ask_return_items``,
  ``action_ask_exchange_item``, ``action_ask_exchange_variant``, ``action_ask_confirmed``
- submissions and look-ups: ``action_order_status``, ``action_cancel_order``,
  ``action_return_order``, ``action_exchange_order``, ``action_change_address``,
  ``action_create_ticket``, ``action_ticket_status``, ``action_recommend_products``

Slots read from the tracker: ``customer_id``, ``order_id``, ``cancel_reason``,
``return_items``, ``exchange_item``, ``exchange_variant``, ``new_address``,
``complaint_text``, ``contact``, ``confirmed``, ``ticket_id``, ``product`` and
``requested_slot``; from ``latest_message``: ``text``, ``intent.name`` and ``entities``
(``entity``/``value``); ``active_loop.name`` (which form is asking); ``sender_id`` (the
conversation id written to audit rows and tickets); ``events`` (slot values before the
latest user message, and the turn's slot candidates at the end).
"""

from __future__ import annotations

from pathlib import Path

from rasa_sdk import Action

from bot.recommend.engine import Recommender
from bot.store.db import Database
from bot.store_actions.base import UsesStore
from bot.store_actions.forms import (
    ValidateCancelOrderForm,
    ValidateChangeAddressForm,
    ValidateComplaintForm,
    ValidateExchangeOrderForm,
    ValidateOrderStatusForm,
    ValidateReturnOrderForm,
)
from bot.store_actions.orders import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionExchangeOrder,
    ActionOrderStatus,
    ActionReturnOrder,
)
from bot.store_actions.questions import (
    ActionAskConfirmed,
    ActionAskExchangeItem,
    ActionAskExchangeVariant,
    ActionAskOrderId,
    ActionAskReturnItems,
)
from bot.store_actions.recommendations import ActionRecommendProducts
from bot.store_actions.tickets import ActionCreateTicket, ActionTicketStatus

ACTION_CLASSES = (
    ValidateOrderStatusForm,
    ValidateCancelOrderForm,
    ValidateReturnOrderForm,
    ValidateExchangeOrderForm,
    ValidateChangeAddressForm,
    ValidateComplaintForm,
    ActionAskOrderId,
    ActionAskReturnItems,
    ActionAskExchangeItem,
    ActionAskExchangeVariant,
    ActionAskConfirmed,
    ActionOrderStatus,
    ActionCancelOrder,
    ActionReturnOrder,
    ActionExchangeOrder,
    ActionChangeAddress,
    ActionCreateTicket,
    ActionTicketStatus,
    ActionRecommendProducts,
)


def build_actions(
    db: Database | None, *, currency: str | None = None, recommender: Recommender | None = None
) -> list[Action]:
    """One instance of every store action, all sharing ``db`` (``None``: the settings'
    database, opened on first use) and writing prices in ``currency`` (``None``: the
    settings' currency, read on first use). ``action_recommend_products`` uses
    ``recommender`` (``None``: its own, built from the settings on first use)."""
    return [
        cls(db, currency=currency, recommender=recommender)
        if cls is ActionRecommendProducts
        else cls(db, currency=currency)
        for cls in ACTION_CLASSES
    ]


def project_actions(
    actions_dir: Path | None,
    db: Database | None,
    *,
    currency: str | None = None,
    recommender: Recommender | None = None,
) -> list[Action]:
    """Clerk's store actions plus the project's own ``actions`` package (or ``actions.py``)
    found in ``actions_dir``; a project action whose ``name()`` is a built-in's replaces it.
    Project actions derived from ``UsesStore`` get ``db`` (and read the currency from the
    settings); others are built without arguments, as rasa-sdk builds them. ``db`` ``None``
    (an action server): every action opens the settings' database on first use."""
    by_name = {a.name(): a for a in build_actions(db, currency=currency, recommender=recommender)}
    if actions_dir is not None:
        for cls in project_action_classes(actions_dir):
            action: Action = cls(db) if issubclass(cls, UsesStore) else cls()
            by_name[action.name()] = action
    return list(by_name.values())


def project_action_classes(actions_dir: Path) -> list[type[Action]]:
    """The concrete ``Action`` classes defined in the project's ``actions`` package or
    module. It is imported as ``actions`` with ``actions_dir`` first on ``sys.path`` (as Rasa
    does), replacing an ``actions`` module imported from another folder before."""
    import importlib
    import inspect
    import pkgutil
    import sys

    folder = Path(actions_dir).resolve()
    root = str(folder)
    loaded = sys.modules.get("actions")
    loaded_file = getattr(loaded, "__file__", None)
    # a path check, not a string prefix: /srv/shop must not take /srv/shop2's actions
    if loaded is not None and not (loaded_file and Path(loaded_file).is_relative_to(folder)):
        for name in [m for m in sys.modules if m == "actions" or m.startswith("actions.")]:
            del sys.modules[name]
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    importlib.invalidate_caches()
    package = importlib.import_module("actions")
    modules = [package]
    for info in pkgutil.walk_packages(getattr(package, "__path__", []), "actions."):
        modules.append(importlib.import_module(info.name))
    found: dict[str, type[Action]] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Action)
                and cls.__module__.startswith("actions")
                and not inspect.isabstract(cls)
            ):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(found.values())


__all__ = ["ACTION_CLASSES", "build_actions", "project_action_classes", "project_actions"]
