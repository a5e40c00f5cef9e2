"""The persisted hybrid index of the knowledge base, and ingestion that keeps it current.

``ingest`` is the one writer: it reads the knowledge folder into passages, upserts them into
the ``knowledge_passages`` table (adding, updating and deleting rows, so running it twice
changes nothing), embeds only passages whose content hash is new (the embeddings of the
previous index are reused for the rest) and writes the index folder:

    index_dir/
      manifest.json     format version, encoder, ids and content hashes (written last)
      passages.jsonl    the passages themselves, so serving needs no database read
      embeddings.npy    float32 [n, dim], L2-normalised passage vectors, in manifest order
      bm25/             the bm25s index over ``bot.knowledge.text.terms`` of each passage

The folder is written beside the old one and swapped in by two renames, so a reader sees
the old index or the new one (or, for the instant between the renames, none), never a mix;
``load`` checks that its files agree with the manifest. ``KnowledgeIndex.load`` reads it in a few
milliseconds (the encoder itself still loads lazily on the first query) and raises
``KnowledgeError`` when the folder is missing, incomplete or inconsistent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import KnowledgeError
from bot.knowledge.passages import Passage, build_passages
from bot.knowledge.text import terms
from bot.lang import find_durations
from bot.lang.script import has_han
from bot.nlu.encoder import encoder_id

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
EMBEDDINGS = "embeddings.npy"
BM25_DIR = "bm25"

#: ``progress(stage, done, total)``; stages: ``knowledge.parse``, ``knowledge.embed``,
#: ``knowledge.store``, ``knowledge.index``.
Progress = Callable[[str, int, int], None]


def passage_vectors(encoder: Any, texts: list[str]) -> np.ndarray:
    """``texts`` embedded as searched passages: ``encoder.encode_passages`` when the encoder
    has one (e5's ``passage: ``), else ``encoder.encode`` (MiniLM embeds all text alike)."""
    encode = getattr(encoder, "encode_passages", None) or encoder.encode
    return np.asarray(encode(texts), dtype=np.float32)


class KnowledgeIndex:
    """Passages with their BM25 and dense representations, in one fixed order.

    Immutable once built; safe to share between threads. ``lexical_scores`` and
    ``dense_scores`` return one score per passage, in ``passages`` order.
    """

    def __init__(
        self,
        passages: Sequence[Passage],
        embeddings: np.ndarray,
        bm25: Any,
        encoder: Any,
        *,
        encoder_name: str,
    ) -> None:
        if embeddings.shape[0] != len(passages):
            raise KnowledgeError(
                f"{len(passages)} passages but {embeddings.shape[0]} embedding rows"
            )
        self.passages: tuple[Passage, ...] = tuple(passages)
        self.embeddings = embeddings
        self.bm25 = bm25
        self.encoder = encoder
        self.encoder_name = encoder_name
        self.position = {p.id: i for i, p in enumerate(self.passages)}

    def __len__(self) -> int:
        return len(self.passages)

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        encoder: Any,
        *,
        previous: KnowledgeIndex | None = None,
        progress: Progress | None = None,
    ) -> tuple[KnowledgeIndex, int]:
        """Index ``passages``; embeddings of passages whose id and content hash are in
        ``previous`` (built with the same encoder) are reused. Returns the index and how
        many passages were embedded."""
        name = encoder_id(encoder)
        reusable: dict[tuple[str, str], np.ndarray] = {}
        if previous is not None and previous.encoder_name == name:
            for p, row in zip(previous.passages, previous.embeddings, strict=True):
                reusable[(p.id, p.content_hash)] = row
        todo = [i for i, p in enumerate(passages) if (p.id, p.content_hash) not in reusable]
        dim = int(encoder.dim)
        embeddings = np.zeros((len(passages), dim), dtype=np.float32)
        for i, p in enumerate(passages):
            row = reusable.get((p.id, p.content_hash))
            if row is not None:
                embeddings[i] = row
        if progress:
            progress("knowledge.embed", 0, len(todo))
        batch = 32
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            vectors = passage_vectors(encoder, [passages[i].index_text for i in chunk])
            embeddings[chunk] = vectors
            if progress:
                progress("knowledge.embed", min(start + batch, len(todo)), len(todo))
        return cls(passages, embeddings, _bm25_index(passages), encoder, encoder_name=name), len(
            todo
        )

    # -- persistence ---------------------------------------------------------------------

    def save(self, index_dir: Path) -> None:
        """Write the index to ``index_dir``, replacing what is there in one swap."""
        index_dir = Path(index_dir)
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_dir.with_name(f".{index_dir.name}.new-{os.getpid()}")
        old = index_dir.with_name(f".{index_dir.name}.old-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        tmp.mkdir()
        try:
            with (tmp / PASSAGES).open("w", encoding="utf-8") as f:
                for p in self.passages:
                    row = {
                        "id": p.id,
                        "source": p.source,
                        "kind": p.kind,
                        "title": p.title,
                        "text": p.text,
                        "meta": p.meta,
                        "content_hash": p.content_hash,
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            np.save(tmp / EMBEDDINGS, self.embeddings, allow_pickle=False)
            self.bm25.save(str(tmp / BM25_DIR), show_progress=False)
            manifest = {
                "format": INDEX_FORMAT,
                "encoder": self.encoder_name,
                "count": len(self.passages),
                "dim": int(self.embeddings.shape[1]),
                "built_at": time.time(),
                "ids": [p.id for p in self.passages],
                "hashes": [p.content_hash for p in self.passages],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            if index_dir.exists():
                os.replace(index_dir, old)
            os.replace(tmp, index_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, index_dir: Path, encoder: Any) -> KnowledgeIndex:
        """Read an index written by ``save``. ``KnowledgeError`` when it is missing,
        incomplete, from another format version or built with a different encoder."""
        import bm25s  # type: ignore[import-untyped]

        index_dir = Path(index_dir)
        manifest_path = index_dir / MANIFEST
        if not manifest_path.is_file():
            raise KnowledgeError(
                f"no knowledge index at {index_dir}; run `clerk ingest` to build it"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest.get("format") != INDEX_FORMAT:
                raise KnowledgeError(
                    f"knowledge index at {index_dir} has format {manifest.get('format')!r}, "
                    f"this Clerk reads {INDEX_FORMAT}; run `clerk ingest`"
                )
            passages = []
            with (index_dir / PASSAGES).open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        passages.append(Passage(**json.loads(line)))
            embeddings = np.load(index_dir / EMBEDDINGS, allow_pickle=False)
            bm25 = bm25s.BM25.load(str(index_dir / BM25_DIR), show_progress=False)
        except KnowledgeError:
            raise
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise KnowledgeError(f"knowledge index at {index_dir} is unreadable: {exc}") from exc
        ids = [p.id for p in passages]
        problems = []
        if ids != manifest.get("ids"):
            problems.append("passages do not match the manifest")
        if [p.content_hash for p in passages] != manifest.get("hashes"):
            problems.append("content hashes do not match the manifest")
        if embeddings.ndim != 2 or embeddings.shape[0] != len(passages):
            problems.append(
                f"embeddings have shape {embeddings.shape} for {len(passages)} passages"
            )
        if embeddings.dtype != np.float32:
            problems.append(f"embeddings are {embeddings.dtype}, not float32")
        if int(bm25.scores.get("num_docs", -1)) != len(passages):
            problems.append("the BM25 index does not cover the passages")
        if problems:
            raise KnowledgeError(
                f"knowledge index at {index_dir} is corrupt: {'; '.join(problems)}"
            )
        name = str(manifest.get("encoder", ""))
        expected = encoder_id(encoder)
        if name != expected or embeddings.shape[1] != int(encoder.dim):
            raise KnowledgeError(
                f"knowledge index at {index_dir} was built with encoder {name!r}, not "
                f"{expected!r}; run `clerk ingest`"
            )
        return cls(passages, embeddings, bm25, encoder, encoder_name=name)

    # -- scoring -------------------------------------------------------------------------

    def lexical_scores(self, query: str) -> np.ndarray:
        tokens = terms(query) + day_terms(query)
        if not tokens:
            return np.zeros(len(self.passages), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    def dense_scores(self, query: str) -> np.ndarray:
        q = np.asarray(self.encoder.encode_one(query), dtype=np.float32)
        if q.shape[0] != self.embeddings.shape[1]:
            raise KnowledgeError(
                f"query vector has {q.shape[0]} dimensions, the index {self.embeddings.shape[1]}"
            )
        return self.embeddings @ q


#: Days in a week, a month, a year: how a Chinese store states its windows ("30天内").
_DAYS_PER = {"week": 7, "month": 30, "year": 365}


def day_terms(query: str) -> list[str]:
    """A Chinese query's weeks, months and years also searched as days: "一个月" finds
    "30天内", "两周" finds "14天" (policies state windows in days)."""
    if not has_han(query):
        return []
    out: list[str] = []
    for d in find_durations(query):
        per = _DAYS_PER.get(d.unit)
        if per is None:
            continue
        for amount in (d.amount, d.upto):
            if amount is not None:
                out += terms(f"{(amount * per).normalize():f}天")
    return out


def indexed_with(index_dir: Path) -> str | None:
    """The id (``encoder_id``) of the encoder that built the index at ``index_dir``; ``None``
    when there is no readable manifest."""
    try:
        manifest = json.loads((Path(index_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = manifest.get("encoder") if isinstance(manifest, dict) else None
    return str(name) if name is not None else None


def _signature(index: KnowledgeIndex) -> tuple[str, list[tuple[str, str]]]:
    return index.encoder_name, [(p.id, p.content_hash) for p in index.passages]


def _bm25_index(passages: Sequence[Passage]) -> Any:
    import bm25s  # type: ignore[import-untyped]

    bm25 = bm25s.BM25()
    bm25.index([terms(p.index_text) or [""] for p in passages], show_progress=False)
    return bm25


# ------------------------------------------------------------------------------ ingestion


@dataclass(frozen=True)
class IngestReport:
    """What one ``ingest`` run changed. ``embedded`` counts passages sent to the encoder."""

    total: int
    added: int
    updated: int
    unchanged: int
    removed: int
    embedded: int
    seconds: float
    index_dir: str

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def ingest(
    db: Any,
    knowledge_dir: Path,
    index_dir: Path,
    encoder: Any,
    progress: Progress | None = None,
    catalog: Any = None,
) -> IngestReport:
    """Bring the passage table and the index folder in line with ``knowledge_dir``.

    Idempotent and incremental: unchanged passages (same id and content hash) are neither
    rewritten nor re-embedded; passages gone from the folder are deleted. The table and
    the index are written in one database transaction; if writing the index fails the
    table rolls back. Raises ``DataError`` for unreadable knowledge files. ``catalog``: the
    folder's ``bot.knowledge.imports.Catalog`` already read with the store's settings.
    """
    from sqlalchemy import delete, select

    from bot.store.models import KnowledgePassage

    started = time.perf_counter()
    passages = build_passages(Path(knowledge_dir), catalog)
    if progress:
        progress("knowledge.parse", len(passages), len(passages))
    previous: KnowledgeIndex | None = None
    if (Path(index_dir) / MANIFEST).exists():
        try:
            previous = KnowledgeIndex.load(Path(index_dir), encoder)
        except KnowledgeError as exc:
            log.warning("rebuilding the knowledge index from scratch: %s", exc)
    index, embedded = KnowledgeIndex.build(passages, encoder, previous=previous, progress=progress)

    added = updated = unchanged = 0
    with db.session() as s:
        stored = dict(s.execute(select(KnowledgePassage.id, KnowledgePassage.content_hash)).all())
        wanted = {p.id for p in passages}
        gone = [pid for pid in stored if pid not in wanted]
        if gone:
            s.execute(delete(KnowledgePassage).where(KnowledgePassage.id.in_(gone)))
        for n, p in enumerate(passages, start=1):
            if p.id not in stored:
                s.add(
                    KnowledgePassage(
                        id=p.id,
                        source=p.source,
                        kind=p.kind,
                        title=p.title,
                        text=p.text,
                        meta=p.meta,
                        content_hash=p.content_hash,
                    )
                )
                added += 1
            elif stored[p.id] != p.content_hash:
                row = s.get(KnowledgePassage, p.id)
                assert row is not None
                row.source, row.kind, row.title = p.source, p.kind, p.title
                row.text, row.meta, row.content_hash = p.text, p.meta, p.content_hash
                updated += 1
            else:
                unchanged += 1
            if progress and (n % 50 == 0 or n == len(passages)):
                progress("knowledge.store", n, len(passages))
        s.flush()
        if previous is None or _signature(previous) != _signature(index):
            index.save(Path(index_dir))
        if progress:
            progress("knowledge.index", len(passages), len(passages))
    report = IngestReport(
        total=len(passages),
        added=added,
        updated=updated,
        unchanged=unchanged,
        removed=len(gone),
        embedded=embedded,
        seconds=round(time.perf_counter() - started, 3),
        index_dir=str(index_dir),
    )
    log.info(
        "knowledge ingested: %d passages (%d added, %d updated, %d removed, %d embedded) in %.2fs",
        report.total,
        report.added,
        report.updated,
        report.removed,
        report.embedded,
        report.seconds,
    )
    return report
