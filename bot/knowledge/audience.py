"""Policy text written for agents, rewritten for shoppers at ingest time.

Stores often hand Clerk the policy their support agents work from ("As a retail agent, you
can help users cancel...", "The user needs to confirm the order id...", "...and you
should check its status before taking the action."). Quoted to a shopper verbatim it
reads like an internal memo. ``build_passages`` therefore passes every policy document
through ``for_shoppers``: a deterministic rewrite, applied only to a document that
``speaks_to_agents``, so a policy already written for shoppers is stored as written.

What the rewrite does, sentence by sentence (each rule is a row of a table below):

1. **Internal sentences are left out**: tool calls, the database, how the agent must
   word or time its replies, "do not make up information" (``INTERNAL``). They tell a
   shopper nothing about the store's rules.
2. **Agent-only clauses are cut** from sentences that also state a rule: "and you should
   check its status before taking the action", "In particular, remember to remind the
   customer to..." (``AGENT_CLAUSES``).
3. **Persons are swapped**: the document's reader (the agent, "you", "the agent") becomes
   the store ("we"); the shopper ("the user", "the customer", "users", "their") becomes
   "you"/"your", with the verb agreeing ("the user needs" -> "you need").

The rewrite never touches a number, a duration, a quoted status or a product word: what a
policy says stays what it says; only who says it to whom changes. The original text is
kept in the passage's ``meta["original"]`` for the store's engineers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# --------------------------------------------------------------------------- detection

# Words with which a text speaks of the shopper in the third person, or to an agent.
_SHOPPER_NOUN = r"(?:user|customer|shopper|buyer|client)"
_AGENT_MARKERS = re.compile(
    r"\b(?:the|a|each|any|other) " + _SHOPPER_NOUN + r"s?\b"
    r"|\b" + _SHOPPER_NOUN + r"s' |\b(?:as an?|the) (?:[\w-]+ )?agent\b(?<!human agent)"
    r"|\btool calls?\b",
    re.IGNORECASE,
)
_MIN_MARKERS = 3


def speaks_to_agents(text: str) -> bool:
    """Whether a document is written for the store's staff: it speaks of the shopper in
    the third person (or of tools and agents) at least ``_MIN_MARKERS`` times."""
    return len(_AGENT_MARKERS.findall(text)) >= _MIN_MARKERS


_AGENT_READER = re.compile(
    r"\b(?:as an?|the|an) (?:[\w-]+ )?agents?\b(?<!human agent)(?<!human agents)"
    r"|\btool calls?\b",
    re.IGNORECASE,
)


def addresses_agents(text: str) -> bool:
    """Whether its "you" is an agent: it speaks of agents or tool calls, or a sentence has
    both "you" and the shopper in the third person ("you have to verify the user")."""
    if _AGENT_READER.search(text):
        return True
    for sentence in _SENTENCE.split(" ".join(text.split())):
        if re.search(r"\byou\b", sentence, re.IGNORECASE) and _AGENT_MARKERS.search(sentence):
            return True
    return False


# ------------------------------------------------------------------------------ rules

# A sentence holding any of these is for the agent only.
INTERNAL = re.compile(
    r"\btool(?:s| calls?)?\b|\bdatabase\b|\bmake up\b|\bsubjective\b|\bsystem prompt\b"
    r"|\brespond to the " + _SHOPPER_NOUN + r"\b|\bper conversation\b"
    r"|\b(?:must|should) deny\b|\bunique (?:product|item) id\b|\bno relations?\b",
    re.IGNORECASE,
)

# Clauses addressed to the agent inside a sentence that also states a rule.
AGENT_CLAUSES = re.compile(
    r",?\s*(?:(?:and|so)\s+)?you (?:should|must|need to|have to) (?:check|verify|look up)\b"
    r"[^.;]*?\bbefore (?:taking|making|calling|doing)\b[^.;,]*"
    r"|(?:^|(?<=[.;]))\s*(?:in particular,\s*)?remember to\b[^.;]*[.;]?"
    r"|(?:^|(?<=[.;]))\s*so confirm\b[^.;]*[.;]?"
    r"|(?:^|(?<=[.;]))\s*be (?:sure|careful|cautious)\b[^.;!]*[.;!]*",
    re.IGNORECASE,
)

_LEAD_IN = re.compile(r"^\s*as an? (?:[\w-]+ )*?agents?,\s*", re.IGNORECASE)


_APOS = "['\u2019]"
# words after which "the customer" is part of a name, not the shopper ("customer support")
_NOT_SHOPPER = r"(?!\s+(?:support|service|care|experience|team|satisfaction|feedback|base)\b)"
_COMPOUND = (
    r"(confirmation|identity|id|profile|account|details|information|address|email|data"
    r"|history|name|consent)"
)
_SUBJECT = "you\x00"  # "you" that took the place of a subject: its verb must agree


def _shopper(match: re.Match[str]) -> str:
    """ "you", marked as a subject when it stands where one does ("If the user provides"
    -> "If you provide"; "offer the user options" -> "offer you options")."""
    before = match.string[: match.start()].rstrip()
    previous = before.split()[-1].lower() if before.split() else ""
    subject = not before or before[-1] in ",;:" or previous in _SUBJECT_BEFORE
    return _SUBJECT if subject else "you"


# (pattern, replacement) in order: possessives and compounds first, then subjects and
# objects. Every replacement is lower case; sentence starts are capitalised at the end.
PERSON_SWAPS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # "the user's", "the customer\u2019s" -> "your"; "customers' orders" -> "your orders"
    (
        re.compile(
            r"\b(?:the|each|a) " + _SHOPPER_NOUN + "(?:" + _APOS + "s|s" + _APOS + ")",
            re.IGNORECASE,
        ),
        "your",
    ),
    (re.compile(r"\b" + _SHOPPER_NOUN + "s" + _APOS + r"(?=\s)", re.IGNORECASE), "your"),
    # "explicit user confirmation", "the user email" -> "your (explicit) confirmation"
    (
        re.compile(
            r"\b(?:the |an? )?((?:explicit|written|own) )?"
            + _SHOPPER_NOUN
            + " "
            + _COMPOUND
            + r"\b",
            re.IGNORECASE,
        ),
        r"your \1\2",
    ),
    # "the user", "a customer", "users", "customers" -> "you"
    (
        re.compile(r"\b(?:the|a|each) " + _SHOPPER_NOUN + r"\b" + _NOT_SHOPPER, re.IGNORECASE),
        _shopper,
    ),
    (
        re.compile(
            r"(?<!other )(?<!any )\b" + _SHOPPER_NOUN + r"s\b" + _NOT_SHOPPER, re.IGNORECASE
        ),
        _shopper,
    ),
)

# The agent (the document's reader) becomes the store: "the agent", "you", "your".
_THE_AGENT = re.compile(r"\b(?:the|an) agent(" + _APOS + r"s)? (?=\w)", re.IGNORECASE)
_AGENT_YOU = re.compile(r"(?:(\w+)([,;:]?\s+))?\b(you|your|yourself)\b", re.IGNORECASE)
# after these (or at a clause's start) a "you" that stands for the shopper is a subject
_SUBJECT_BEFORE = frozenset(
    {
        "and", "or", "but", "if", "when", "that", "then", "so", "before", "after", "once",
        "unless", "while", "because", "where", "which", "who", "also", "only", "still",
        "until", "as",
    }
)  # fmt: skip
# after these the agent's "you" is an object: "us" ("the user tells you" -> "tells us");
# elsewhere a subject: "we" ("Any action you take" -> "Any action we take")
_OBJECT_BEFORE = frozenset(
    {
        "to", "for", "with", "from", "about", "by", "of", "at", "on", "help", "helps", "ask",
        "asks", "tell", "tells", "give", "gives", "send", "sends", "contact", "contacts",
        "assist", "assists", "remind", "reminds", "let", "lets", "allow", "allows", "call",
        "calls", "email", "emails", "inform", "informs", "notify", "notifies", "thank",
    }
)  # fmt: skip


def _the_agent(match: re.Match[str]) -> str:
    return "our " if match.group(1) else "we "


def _agent_you(match: re.Match[str]) -> str:
    before, gap, word = match.group(1), match.group(2) or "", match.group(3).lower()
    lead = f"{before}{gap}" if before else ""
    if word == "your":
        return lead + "our"
    if word == "yourself":
        return lead + "ourselves"
    obj = before is not None and not gap.strip() and before.lower() in _OBJECT_BEFORE
    return lead + ("us" if obj else "we")


# After "the user" became a subject "you", its verb agrees ("you needs" -> "you need").
_IRREGULAR = {"has": "have", "is": "are", "was": "were", "does": "do", "goes": "go"}
_NOT_VERBS = frozenset({"always", "perhaps", "sometimes", "afterwards", "towards", "unless"})
_VERB_AFTER_YOU = re.compile(
    "(" + _SUBJECT + r")(\s+(?:(?:also|only|then|already|still|first|just)\s+)?)([a-z]+)\b"
)
_DOUBLE_YOUR = re.compile(r"\byour ((?:\w+ )?)your\b")
# a sentence that only illustrates the one before it goes when that one went
_REFERS_BACK = re.compile(
    r"^(?:for example|for instance|e\.g\.|this|that|these|those)\b", re.IGNORECASE
)
# "they", "their", "them" right after the shopper was named mean the shopper
_THEY = re.compile(r"\b(they|their|them|themselves)\b", re.IGNORECASE)
_THEY_TO = {"they": "you", "their": "your", "them": "you", "themselves": "yourself"}
_NOT_PLURAL = frozenset({"is", "was", "has", "its", "this", "does", "always", "unless", "yes"})


def _their(s: str) -> str:
    """Pronouns that follow "you" (the shopper) with no other plural in between become
    "you"/"your": "remind you to confirm they have..." -> "...you have"; "items if they
    are unused" keeps its "they"."""

    def swap(m: re.Match[str]) -> str:
        before = s[: m.start()]
        last = max(before.rfind("you"), before.rfind(_SUBJECT))
        if last < 0:
            return m.group(0)
        between = re.findall(r"[a-z]+", before[last + 3 :].lower())
        if any(len(w) > 3 and w.endswith("s") and w not in _NOT_PLURAL for w in between):
            return m.group(0)
        return _THEY_TO[m.group(1).lower()]

    return _THEY.sub(swap, s)


def _agree(match: re.Match[str]) -> str:
    word = match.group(3)
    if word in _NOT_VERBS:
        pass
    elif word in _IRREGULAR:
        word = _IRREGULAR[word]
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes", "oes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    return match.group(1) + match.group(2) + word


# ---------------------------------------------------------------------------- rewrite

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def for_shoppers(text: str, *, agent_reader: bool = True) -> str:
    """``text`` (one passage of a staff-facing document) as a shopper should read it:
    internal sentences out, agent-only clauses cut, persons swapped. ``agent_reader``:
    the document's "you" is the agent (``addresses_agents``) and becomes "we"; otherwise
    "you" already is the shopper and stays. Paragraphs and bullets keep their layout; a
    bullet left empty is dropped."""
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [_rewrite_unit(unit, agent_reader) for unit in _units(paragraph)]
        kept = [line for line in lines if line]
        if kept:
            out.append("\n".join(kept))
    return "\n\n".join(out)


def _units(paragraph: str) -> list[str]:
    """A paragraph's bullet items (each with its marker), or the paragraph as one unit."""
    if re.search(r"^\s*(?:[-*+]|\d+[.)])\s", paragraph, re.MULTILINE):
        items = re.split(r"\n(?=\s*(?:[-*+]|\d+[.)])\s)", paragraph)
        return [" ".join(i.split()) for i in items]
    return [" ".join(paragraph.split())]


def _rewrite_unit(unit: str, agent_reader: bool) -> str:
    bullet = re.match(r"^\s*([-*+]|\d+[.)])\s+", unit)
    body = unit[bullet.end() :] if bullet else unit
    kept: list[str] = []
    dropped = False
    for sentence in _SENTENCE.split(body):
        rewritten = (
            ""
            if dropped and _REFERS_BACK.match(sentence)
            else rewrite_sentence(sentence, agent_reader=agent_reader)
        )
        dropped = not rewritten
        if rewritten:
            kept.append(rewritten)
    text = " ".join(kept)
    if not text:
        return ""
    return f"{bullet.group(1)} {text}" if bullet else text


def rewrite_sentence(sentence: str, *, agent_reader: bool = True) -> str:
    """One sentence for a shopper, or "" when it is for the agent only (see
    ``for_shoppers`` for ``agent_reader``)."""
    if INTERNAL.search(sentence):
        return ""
    s = AGENT_CLAUSES.sub("", sentence).strip()
    s = _LEAD_IN.sub("", s)
    if not re.search(r"\w", s):
        return ""
    spoke_of_shopper = bool(re.search(r"\b" + _SHOPPER_NOUN + r"s?\b", s, re.IGNORECASE))
    s = _THE_AGENT.sub(_the_agent, s)
    if agent_reader:
        s = _AGENT_YOU.sub(_agent_you, s)
    for pattern, shopper_to in PERSON_SWAPS:
        s = pattern.sub(shopper_to, s)
    s = _VERB_AFTER_YOU.sub(_agree, s)
    if spoke_of_shopper:
        s = _their(s)
    s = s.replace(_SUBJECT, "you")
    s = re.sub(r" {2,}", " ", _DOUBLE_YOUR.sub(r"your \1", s))
    s = re.sub(r"\s+([,.;!?])", r"\1", s).strip()
    if s and s[-1] not in ".!?":
        s += "."
    return s[0].upper() + s[1:]
