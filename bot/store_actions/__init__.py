"""The store's custom actions, written against rasa-sdk.

Two ways to run them, same code:

- In Clerk's engine: ``build_actions(db)`` returns one instance of every action, all using
  the engine's ``Database``; register them with ``ActionExecutor.register_action``.
- In a separate action server: ``python -m rasa_sdk --actions bot.store_actions`` (or
  ``ActionExecutor().register_package("bot.store_actions")``) finds the concrete ``Action`` classes
  and builds them without arguments; they open ``Database.from_env()``
  (``CLERK_DATABASE_URL``) on first use.

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

from rasa_sdk import Action

from bot.store.db import Database
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


def build_actions(db: Database) -> list[Action]:
    """One instance of every store action, all sharing ``db``."""
    return [cls(db) for cls in ACTION_CLASSES]


__all__ = ["ACTION_CLASSES", "build_actions"]
