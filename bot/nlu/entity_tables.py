"""Entity tables: the plain JSON the entity extractors are built from.

Training builds them once from the NLU data and the catalog (``build_entity_tables``); the
artifact saves them as ``entities.json``; serving rebuilds the extractors from them
(``extractor_from_tables``), so a model extracts with the catalog terms, synonyms and
patterns it was trained with, whatever the catalog says now.

Keys: ``gazetteer`` (``CatalogGazetteer.to_dict``), ``reasons`` (phrase -> canonical
reason), ``regexes`` (entity -> patterns from nlu.yml, only for entities without a built-in
pattern), ``synonyms`` (lower-cased surface -> canonical value). A reader treats a missing
key as empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.nlu.data import NLUData
from bot.nlu.entities import (
    CatalogGazetteer,
    EntityExtractor,
    ReasonExtractor,
    RegexEntityExtractor,
)

__all__ = ["build_entity_tables", "extractor_from_tables"]


def build_entity_tables(
    data: NLUData, catalog: Iterable[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Everything the extractors need, as plain JSON (saved with the model).

    Product and option values named in ``data`` (lookups, annotated examples) that the
    catalog does not know join the gazetteer, under their synonym's canonical value.
    """
    synonyms = {k: v for k, v in data.synonyms.items()}
    products = list(catalog or [])
    base = CatalogGazetteer.from_products(products, aliases=synonyms)
    extra_products: list[str] = []
    extra_options: list[str] = []
    for entity, bucket in (("product", extra_products), ("option", extra_options)):
        for value in list(data.lookups.get(entity, ())) + data.entity_values(entity):
            canonical = synonyms.get(value.lower(), value)
            if base._lookup(value) is None and base._lookup(canonical) is None:
                bucket.append(canonical)
    gazetteer = CatalogGazetteer.from_products(
        products, aliases=synonyms, extra_products=extra_products, extra_options=extra_options
    )
    reasons = ReasonExtractor.with_defaults(synonyms, data.entity_values("reason"))
    # nlu.yml regexes add patterns only for entities without a built-in pattern: the
    # built-ins normalise values and avoid false hits the usual Rasa regexes allow.
    extra_regexes = {
        name: list(patterns)
        for name, patterns in data.regexes.items()
        if name not in RegexEntityExtractor.ENTITIES
    }
    return {
        "gazetteer": gazetteer.to_dict(),
        "reasons": reasons.phrases,
        "regexes": extra_regexes,
        "synonyms": synonyms,
    }


def patterns_from_tables(tables: Mapping[str, Any]) -> RegexEntityExtractor:
    """The pattern extractor (built-ins plus the tables' nlu.yml regexes)."""
    return RegexEntityExtractor(tables.get("regexes") or {})


def extractor_from_tables(tables: Mapping[str, Any]) -> EntityExtractor:
    """The entity extractor a model serves with, from its tables."""
    return EntityExtractor(
        patterns=patterns_from_tables(tables),
        gazetteer=CatalogGazetteer.from_dict(tables.get("gazetteer") or {}),
        reasons=ReasonExtractor(tables.get("reasons") or {}),
    )
