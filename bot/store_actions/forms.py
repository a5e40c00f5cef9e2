"""``validate_<form>`` actions: custom slot extraction and validation for every form of
``training_data/domain.yml``.

How the engine calls them (Rasa 3's FormAction protocol): while a form is active, the
turn's slot candidates are appended as ``slot`` events at the end of the tracker events,
then ``validate_<form>`` runs. rasa-sdk's ``FormValidationAction.run`` first calls every
``extract_<slot>`` of the form's required slots (custom mappings: ``customer_id``,
``return_items``, ``exchange_item``, ``exchange_variant``, fallbacks for the others), then
validates the candidates. The returned ``SlotSet`` events replace the candidates; a
``None`` value rejects one, and the form asks for it again. Rejections always come with a
message saying why, so the shopper is never asked the same thing twice without a reason.

Validation order and dependencies: slots are validated in the form's ``required_slots``
order, so the shopper's identity is settled before any order is looked at. Changing an
earlier answer (another order) clears the later answers that depended on it, and a
confirmation given in the same message as a change does not count: the shopper must see
the new details first.

Privacy: until ``customer_id`` is verified no order is looked up; afterwards an order of
another customer gets the same reply as an unknown order.
"""

from __future__ import annotations

from abc import ABC
from typing import Any

from rasa_sdk import Tracker, utils
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.lang import answers
from bot.lang import find_order_ids as find_order_ids_zh
from bot.lang import find_phones as find_mobile_phones
from bot.lang.script import has_han
from bot.store.models import Customer, Order, Variant
from bot.store_actions import replies
from bot.store_actions.base import (
    StoreFormValidator,
    entity_values,
    first_entity,
    latest_intent,
    latest_text,
    slot_before_turn,
)
from bot.store_actions.parsing import (
    CANCEL_REASONS,
    cancel_reason_from_text,
    find_zip_codes,
    match_items,
    match_variant,
    mentions_credentials,
    same_address,
    says_no_order,
)
from bot.store_actions.store import (
    ORDER_RULES,
    OrderRule,
    alternatives,
    customer_by_email,
    customers_by_name_and_zip,
    item_views,
    lines_for,
    order_line,
    owned_order,
    variant_views,
)
from bot.text_rules import (
    AddressError,
    find_emails,
    find_phones,
    is_email,
    normalise_order_id,
    normalise_phone,
    parse_address,
)

FORM_INTENTS = {
    "order_status_form": "order_status",
    "cancel_order_form": "cancel_order",
    "return_order_form": "return_order",
    "exchange_order_form": "exchange_order",
    "change_address_form": "change_address",
    "complaint_form": "complaint",
}
MAX_BUTTONS = 10
_ANSWER_INTENTS = {"inform", "affirm", "deny", "nlu_fallback", None}
# (form, order status) pairs with a hint at what the shopper can do instead: the response
# ``utter_status_hint_<form>_<status>``
_STATUS_HINTS = frozenset(
    {
        ("cancel_order_form", "delivered"),
        ("change_address_form", "delivered"),
        ("return_order_form", "pending"),
        ("exchange_order_form", "pending"),
        ("return_order_form", "processed"),
        ("exchange_order_form", "processed"),
    }
)


class StoreForm(StoreFormValidator, ABC):
    """Shared machinery of the store's form validators (abstract: never registered)."""

    # ------------------------------------------------------------------ protocol
    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        required = await self.required_slots(self.domain_slots(domain), dispatcher, tracker, domain)
        candidates = tracker.slots_to_validate()
        before = {name: slot_before_turn(tracker, name) for name in required}
        result: dict[str, Any] = {}
        for position, name in enumerate(required):
            if name not in candidates or name in result:
                continue
            method = getattr(self, f"validate_{name}", None)
            if method is None:
                output: Any = {name: candidates[name]}
            else:
                output = await utils.call_potential_coroutine(
                    method(candidates[name], dispatcher, tracker, domain)
                )
            if not isinstance(output, dict):
                output = {name: None}
            result.update(output)
            tracker.slots.update(output)
            if name != "customer_id" and result.get(name) != before.get(name):
                # a changed answer voids the answers that depended on it
                for later in required[position + 1 :]:
                    if later in result or later in candidates or tracker.slots.get(later) is None:
                        continue
                    result[later] = None
                    tracker.slots[later] = None
        changed = [
            k
            for k, v in result.items()
            if k not in ("confirmed", "customer_id") and v != before.get(k)
        ]
        if result.get("confirmed") is not None and changed:
            # a yes only counts for details the shopper has seen
            result["confirmed"] = None
            tracker.slots["confirmed"] = None
        return [SlotSet(k, v) for k, v in result.items()]

    # ------------------------------------------------------------------- helpers
    def rule(self) -> OrderRule:
        return ORDER_RULES[self.form_name()]

    def answering(self, tracker: Tracker) -> bool:
        """Is the latest message an answer to the form's question (and not a side
        question the engine should handle)? Only then do failed extractions explain."""
        intent = latest_intent(tracker)
        return intent in _ANSWER_INTENTS or intent == FORM_INTENTS.get(self.form_name())

    def requested(self, tracker: Tracker, slot: str) -> bool:
        return tracker.get_slot("requested_slot") == slot

    def current_order(self, s: Session, tracker: Tracker) -> Order | None:
        return owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))

    def order_problem(self, s: Session, order: Order) -> dict[str, Any] | None:
        """Why this form cannot use ``order`` beyond its status, as ``utter_message``
        arguments (None: usable)."""
        return None

    def order_fills(self, s: Session, order: Order) -> dict[str, Any]:
        """Slots that follow from the chosen order alone (exchange: its only item)."""
        return {}

    def check_order(
        self, s: Session, order_id: str, customer_id: str, dispatcher: CollectingDispatcher
    ) -> dict[str, Any]:
        order = owned_order(s, order_id, customer_id)
        if order is None:
            dispatcher.utter_message(response="utter_order_not_found", order_id=order_id)
            return {"order_id": None}
        rule = self.rule()
        if rule.statuses is not None and order.status not in rule.statuses:
            form = self.form_name()
            dispatcher.utter_message(
                response="utter_wrong_status",
                order_id=order.order_id,
                status=replies.data_value("order_status", order.status),
                refusal=replies.refusal(form),
                hint=replies.phrase(f"utter_status_hint_{form}_{order.status}")
                if (form, order.status) in _STATUS_HINTS
                else None,
            )
            return {"order_id": None}
        problem = self.order_problem(s, order)
        if problem:
            dispatcher.utter_message(**problem)
            return {"order_id": None}
        return {"order_id": order.order_id, **self.order_fills(s, order)}

    # ------------------------------------------------------------------ order_id
    def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Fallback for an order id the NLU did not tag as an entity ("it's W2611340")."""
        if entity_values(tracker, "order_id"):
            return {}
        found = _order_id_in(latest_text(tracker))
        if found and found != tracker.get_slot("order_id"):
            return {"order_id": found}
        return {}

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        order_id = normalise_order_id(value)
        if order_id is None:
            dispatcher.utter_message(response="utter_not_an_order_id", value=value)
            return {"order_id": None}
        customer_id = tracker.get_slot("customer_id")
        if not customer_id:
            # identity first: validate_customer_id checks this order once it is known
            return {"order_id": order_id}
        with self.db.session() as s:
            return self.check_order(s, order_id, customer_id, dispatcher)


class OrderForm(StoreForm, ABC):
    """Forms that act on one of the verified shopper's orders (abstract)."""

    # --------------------------------------------------------------- customer_id
    def extract_customer_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Find the shopper by email (entity or text), or by full name + zip code.

        Runs on every message of the form but only acts on clear credentials: an email
        address, or (before verification, when asked or when the message offers them) a
        zip code together with a customer's first and last name.
        """
        text = latest_text(tracker)
        current = tracker.get_slot("customer_id")
        asked = self.requested(tracker, "customer_id")
        emails = [str(v).strip().lower() for v in entity_values(tracker, "email")]
        emails += [m.value for m in find_emails(text) if m.value not in emails]
        with self.db.session() as s:
            if emails:
                found = next((c for c in (customer_by_email(s, e) for e in emails) if c), None)
                if found is not None:
                    return self._identified(found, current, dispatcher)
                if current is None:
                    dispatcher.utter_message(response="utter_no_account_for_email", email=emails[0])
                return {}
            if current is not None:
                return {}
            if not (asked or mentions_credentials(text)):
                return {}
            if not find_zip_codes(text):
                if asked and self.answering(tracker) and text.strip():
                    dispatcher.utter_message(response="utter_no_credentials_found")
                return {}
            matches = customers_by_name_and_zip(s, text)
            if len(matches) == 1:
                return self._identified(matches[0], current, dispatcher)
            if matches:
                dispatcher.utter_message(response="utter_several_accounts_match")
            else:
                dispatcher.utter_message(response="utter_no_account_for_name")
            return {}

    @staticmethod
    def _identified(
        customer: Customer, current: str | None, dispatcher: CollectingDispatcher
    ) -> dict[str, Any]:
        if current is None:
            return {"customer_id": customer.user_id}
        if current != customer.user_id:
            dispatcher.utter_message(response="utter_one_customer")
        return {}

    def validate_customer_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        before = slot_before_turn(tracker, "customer_id")
        with self.db.session() as s:
            customer = s.get(Customer, str(value)) if value else None
            if customer is None:
                if before and before != value:
                    return {"customer_id": before}
                dispatcher.utter_message(response="utter_not_verified")
                return {"customer_id": None}
            if before and before != customer.user_id:
                dispatcher.utter_message(response="utter_one_customer")
                return {"customer_id": before}
            out: dict[str, Any] = {"customer_id": customer.user_id}
            if before != customer.user_id:
                dispatcher.utter_message(response="utter_verified", first_name=customer.first_name)
                order_id = tracker.get_slot("order_id")
                if order_id and "order_id" not in tracker.slots_to_validate():
                    # an order named before verification is checked now
                    out.update(self.check_order(s, str(order_id), customer.user_id, dispatcher))
            return out

    # ------------------------------------------------------------------ confirmed
    def validate_confirmed(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A yes or no counts only as the answer to the confirmation question."""
        if not self.requested(tracker, "confirmed"):
            return {"confirmed": None}
        if isinstance(value, str):
            said = answers.says_yes_or_no(value)
            value = said if said is not None else value.strip().lower() in ("true", "1")
        return {"confirmed": bool(value)}

    def extract_confirmed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """A plain yes or no ("好的", "不要了") the intent mappings did not read, when
        the form asks for the confirmation."""
        if not self.requested(tracker, "confirmed") or latest_intent(tracker) in ("affirm", "deny"):
            return {}
        said = answers.says_yes_or_no(latest_text(tracker))
        return {} if said is None else {"confirmed": said}


# -------------------------------------------------------------------------- the forms


class ValidateOrderStatusForm(OrderForm):
    def name(self) -> str:
        return "validate_order_status_form"


class ValidateCancelOrderForm(OrderForm):
    def name(self) -> str:
        return "validate_cancel_order_form"

    def extract_cancel_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Free text ("I don't need it anymore") mapped to one of the policy's reasons."""
        asked = self.requested(tracker, "cancel_reason")
        if tracker.get_slot("cancel_reason") is not None and not asked:
            return {}
        if entity_values(tracker, "reason"):
            return {}  # the engine maps the entity; validate_cancel_reason reads it
        text = latest_text(tracker)
        reason = cancel_reason_from_text(text)
        if reason:
            return {"cancel_reason": reason}
        if asked and self.answering(tracker) and text.strip() and not _order_id_in(text):
            return {"cancel_reason": text.strip()}  # rejected, with the reasons, below
        return {}

    def validate_cancel_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reason = value if value in CANCEL_REASONS else cancel_reason_from_text(value)
        if reason is None:
            dispatcher.utter_message(response="utter_cancel_reason_invalid")
            return {"cancel_reason": None}
        return {"cancel_reason": reason}


class ValidateReturnOrderForm(OrderForm):
    def name(self) -> str:
        return "validate_return_order_form"

    def extract_return_items(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Items named in the message ("the water bottle", "all") as a list of item ids."""
        asked = self.requested(tracker, "return_items")
        if tracker.get_slot("return_items") and not asked:
            return {}
        chosen = entity_values(tracker, "return_items")
        if chosen:
            flat: list[str] = []
            for v in chosen:
                flat.extend(str(x) for x in (v if isinstance(v, list) else [v]))
            return {"return_items": flat}
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            if order is None:
                return {}
            views = item_views(order)
            match = match_items(_item_text(tracker), views)
            if match.indices and not match.ambiguous:
                return {"return_items": [views[i].item_id for i in match.indices]}
            if asked and self.answering(tracker):
                if match.ambiguous:
                    _ask_which_of(dispatcher, order, match.ambiguous, "return_items", self.currency)
                else:
                    dispatcher.utter_message(response="utter_which_items_unclear")
        return {}

    def validate_return_items(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        ids = [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            if order is None:
                return {"return_items": None}
            if any(i.strip().lower() in ("all", "everything") for i in ids):
                ids = [line.item_id for line in order.items]
            lines = lines_for(order, ids)
            if not ids or not lines:
                dispatcher.utter_message(
                    response="utter_items_not_in_order", order_id=order.order_id
                )
                return {"return_items": None}
            return {"return_items": [line.item_id for line in lines]}


class ValidateExchangeOrderForm(OrderForm):
    def name(self) -> str:
        return "validate_exchange_order_form"

    def order_problem(self, s: Session, order: Order) -> dict[str, Any] | None:
        if any(alternatives(s, line.product_id, line.item_id) for line in order.items):
            return None
        return {"response": "utter_nothing_to_exchange", "order_id": order.order_id}

    def order_fills(self, s: Session, order: Order) -> dict[str, Any]:
        distinct = {line.item_id for line in order.items}
        return {"exchange_item": distinct.pop()} if len(distinct) == 1 else {}

    def extract_exchange_item(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Which item of the order to exchange; the only one when the order has one."""
        asked = self.requested(tracker, "exchange_item")
        if tracker.get_slot("exchange_item") and not asked:
            return {}
        chosen = first_entity(tracker, "exchange_item")
        if chosen:
            return {"exchange_item": str(chosen)}
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            if order is None:
                return {}
            views = item_views(order)
            if len({v.item_id for v in views}) == 1:
                return {"exchange_item": views[0].item_id}
            match = match_items(_item_text(tracker), views, allow_all=False)
            distinct = sorted({views[i].item_id for i in match.indices})
            if len(distinct) == 1 and not match.ambiguous:
                return {"exchange_item": distinct[0]}
            if asked and self.answering(tracker):
                if match.ambiguous:
                    _ask_which_of(
                        dispatcher, order, match.ambiguous, "exchange_item", self.currency
                    )
                elif len(distinct) > 1:
                    dispatcher.utter_message(response="utter_one_exchange_at_a_time")
                else:
                    dispatcher.utter_message(response="utter_which_item_unclear")
        return {}

    def validate_exchange_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            if order is None:
                return {"exchange_item": None}
            line = order_line(order, str(value))
            if line is None:
                dispatcher.utter_message(
                    response="utter_item_not_in_order", order_id=order.order_id
                )
                return {"exchange_item": None}
            if not alternatives(s, line.product_id, line.item_id):
                dispatcher.utter_message(
                    response="utter_item_has_no_alternatives", product=line.name
                )
                return {"exchange_item": None}
            return {"exchange_item": line.item_id}

    def extract_exchange_variant(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """The new options ("size L", "in red") matched against available variants."""
        asked = self.requested(tracker, "exchange_variant")
        if tracker.get_slot("exchange_variant") and not asked:
            return {}
        item_id = tracker.get_slot("exchange_item")
        chosen = first_entity(tracker, "exchange_variant")
        if chosen and item_id:
            return {"exchange_variant": str(chosen)}
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            line = order_line(order, str(item_id)) if order and item_id else None
            if line is None:
                return {}
            alts = alternatives(s, line.product_id, line.item_id)
            everything = s.scalars(select(Variant).where(Variant.product_id == line.product_id))
            match = match_variant(
                _item_text(tracker),
                line.options or {},
                variant_views(alts),
                catalogue=variant_views(list(everything)),
            )
            wants_change = any(
                value != str((line.options or {}).get(key))
                for key, values in match.mentioned.items()
                for value in values
            )
            if match.chosen and (asked or wants_change):
                return {"exchange_variant": match.chosen.item_id}
            if not (asked and self.answering(tracker)):
                return {}
            by_id = {v.item_id: v for v in alts}
            if match.candidates:
                shown = [by_id[c.item_id] for c in match.candidates[:MAX_BUTTONS]]
                choices = [_variant_text(v, line.options, self.currency) for v in shown]
                dispatcher.utter_message(
                    response="utter_which_option",
                    options=replies.bullets(choices),
                    buttons=[
                        replies.button(text, replies.inform(exchange_variant=v.item_id))
                        for v, text in zip(shown, choices, strict=True)
                    ],
                )
            elif match.mentioned:
                dispatcher.utter_message(
                    response="utter_no_such_option",
                    product=line.name,
                    wanted=[
                        replies.phrase(
                            "utter_wanted_option" if n == 0 else "utter_wanted_also",
                            option=k,
                            values=" / ".join(vs),
                        )
                        for n, (k, vs) in enumerate(match.mentioned.items())
                    ],
                )
            else:
                dispatcher.utter_message(response="utter_option_unclear")
        return {}

    def validate_exchange_variant(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            item_id = tracker.get_slot("exchange_item")
            line = order_line(order, str(item_id)) if order and item_id else None
            if line is None:
                return {"exchange_variant": None}
            variant = s.get(Variant, str(value))
            if variant is None or variant.product_id != line.product_id:
                dispatcher.utter_message(response="utter_not_an_option", product=line.name)
                return {"exchange_variant": None}
            if variant.item_id == line.item_id:
                dispatcher.utter_message(response="utter_option_already_owned")
                return {"exchange_variant": None}
            if not variant.available:
                dispatcher.utter_message(
                    response="utter_option_sold_out",
                    product=line.name,
                    options=replies.options_text(variant.options),
                )
                return {"exchange_variant": None}
            return {"exchange_variant": variant.item_id}


class ValidateChangeAddressForm(OrderForm):
    def name(self) -> str:
        return "validate_change_address_form"

    def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """Parse the text into ``{address1, address2, city, state, zip, country}``."""
        try:
            address = parse_address(
                replies.address_text(value) if isinstance(value, dict) else str(value or "")
            )
        except AddressError as exc:
            dispatcher.utter_message(
                response="utter_address_unusable", problem=replies.address_problem(exc)
            )
            return {"new_address": None}
        with self.db.session() as s:
            order = self.current_order(s, tracker)
            if order is not None and same_address(order.address or {}, address):
                dispatcher.utter_message(
                    response="utter_address_unchanged", order_id=order.order_id
                )
                return {"new_address": None}
        return {"new_address": address}


class ValidateComplaintForm(StoreForm):
    def name(self) -> str:
        return "validate_complaint_form"

    def extract_order_id(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if self.requested(tracker, "order_id") and says_no_order(latest_text(tracker)):
            return {"order_id": "none"}
        return super().extract_order_id(dispatcher, tracker, domain)

    def validate_order_id(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """An existing order (the shopper's own, once verified), or ``"none"``."""
        if str(value).strip().lower() == "none" or says_no_order(str(value)):
            return {"order_id": "none"}
        order_id = normalise_order_id(value)
        if order_id is None:
            dispatcher.utter_message(response="utter_complaint_not_an_order_id", value=value)
            return {"order_id": None}
        customer_id = tracker.get_slot("customer_id")
        with self.db.session() as s:
            order = owned_order(s, order_id, customer_id) if customer_id else s.get(Order, order_id)
            if order is None:
                dispatcher.utter_message(
                    response="utter_complaint_order_not_found", order_id=order_id
                )
                return {"order_id": None}
        return {"order_id": order_id}

    def validate_complaint_text(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if len(text) < 5:
            dispatcher.utter_message(response="utter_complaint_too_short")
            return {"complaint_text": None}
        return {"complaint_text": text}

    def extract_contact(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        """An email address or phone number in the text, when the form asks for it."""
        if not self.requested(tracker, "contact"):
            return {}
        if entity_values(tracker, "email") or entity_values(tracker, "phone"):
            return {}
        text = latest_text(tracker)
        emails = find_emails(text)
        if emails:
            return {"contact": emails[0].value}
        mobiles = find_mobile_phones(text) if has_han(text) else []
        if mobiles:
            return {"contact": mobiles[0].value}
        # asked for a contact: bare digits are a phone number without a cue word
        phones = find_phones(text, bare_needs_cue=False)
        if phones:
            return {"contact": text[phones[0].start : phones[0].end]}
        if self.answering(tracker) and text.strip():
            dispatcher.utter_message(response="utter_not_a_contact")
        return {}

    def validate_contact(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = str(value or "").strip()
        if is_email(text):
            return {"contact": text.lower()}
        if normalise_phone(text) is not None:
            return {"contact": text}
        dispatcher.utter_message(response="utter_contact_invalid")
        return {"contact": None}


# ------------------------------------------------------------------------------ text


def _item_text(tracker: Tracker) -> str:
    """The latest message, with the catalog names of the products and options the NLU
    found in it: a Chinese message ("退登山靴") names items by its synonyms' values."""
    named = [str(v) for e in ("product", "option") for v in entity_values(tracker, e)]
    return " ".join([latest_text(tracker), *named])


def _order_id_in(text: str) -> str | None:
    """The first order id in ``text``, English or Chinese ("单号：2611340"), canonical."""
    found = find_order_ids_zh(text)
    return found[0].value if found else None


def _ask_which_of(
    dispatcher: CollectingDispatcher, order: Order, names: list[str], slot: str, currency: str
) -> None:
    """Several different items of the order fit the name: list them and ask."""
    seen: set[str] = set()
    lines = []
    for line in order.items:
        if line.name in names and line.item_id not in seen:
            seen.add(line.item_id)
            lines.append(line)
    value = (lambda item_id: [item_id]) if slot == "return_items" else (lambda item_id: item_id)
    dispatcher.utter_message(
        response="utter_which_item",
        products=" / ".join(names),
        order_id=order.order_id,
        items=replies.bullets([replies.line_text(line, currency) for line in lines]),
        buttons=[
            replies.button(
                replies.line_text(line, currency), replies.inform(**{slot: value(line.item_id)})
            )
            for line in lines[:MAX_BUTTONS]
        ],
    )


def _variant_text(variant: Variant, current: dict[str, Any] | None, currency: str) -> str:
    changed = {k: v for k, v in (variant.options or {}).items() if (current or {}).get(k) != v}
    return f"{replies.options_text(changed or variant.options)}: {replies.price(variant.price, currency)}"
