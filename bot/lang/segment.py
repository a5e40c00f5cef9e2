"""Chinese word segmentation (``rjieba``: jieba's algorithm and dictionary, compiled in).

``segment`` cuts a text into words the way jieba's precise mode does; ``for_search=True``
also yields the shorter dictionary words inside each long word ("羽绒服" -> "羽绒",
"羽绒服"), which is what a search index wants so that a query and a passage segmented
differently still share terms. Whitespace between words is dropped; punctuation, digits and
Latin words come back as their own tokens. The dictionary is the one compiled into the wheel:
nothing is read from disk or the network, and no code here adds words to it (it is
process-wide state in rjieba), so results do not depend on what ran before.
"""

from __future__ import annotations

import rjieba


def segment(text: str, *, for_search: bool = False) -> list[str]:
    """The words of ``text`` in order, whitespace dropped."""
    words = rjieba.cut_for_search(text) if for_search else rjieba.cut(text)
    return [w for w in words if not w.isspace()]


def segment_spans(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` for each word of ``text`` (precise mode), whitespace
    dropped; ``text[start:end] == word``."""
    return [(w, s, e) for w, s, e in rjieba.tokenize(text) if not w.isspace()]
