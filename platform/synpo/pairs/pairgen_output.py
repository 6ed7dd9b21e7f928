"""A pair-generation output folder seen from the pairs side.

The job (:mod:`synpo.pairgen.write_stage`) writes ``<output>/pairs/`` (the pair schema),
``<output>/audit/`` (every candidate: C1/C2/C3, total, reasoning and judge failures as JSON, role
``chosen``/``rejected``/``""``) and ``<output>/videos/`` (per video: status, clip captions as JSON,
margin). Tools that take "a pairs URI" accept that folder too: :func:`locate_pairs` finds its
``pairs/``, :func:`read_audit` and :func:`read_videos` give the rest keyed by video id.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from synpo.pairs.io import read_pairs
from synpo.pairs.schema import PairSchemaError
from synpo.storage import ObjectNotFound, Storage, join_uri

FILE_SUFFIXES = (".parquet", ".jsonl", ".json")
OUTPUT_TABLES = frozenset({"pairs", "audit", "videos", "failures"})
SUMMARY = "summary.json"


@dataclass(frozen=True)
class PairSource:
    """Where the pairs are; for a pair-generation output, its folder and which tables it holds."""

    pairs: str
    output: str | None = None  # None for a plain pairs file or folder of parts
    tables: frozenset[str] = frozenset()  # e.g. {"pairs", "audit", "videos", "failures"}

    @property
    def empty(self) -> bool:
        """A pair-generation output that holds no pairs (every video filtered, failed or not yet done): 0 pairs, not an error."""
        return self.output is not None and "pairs" not in self.tables


def _tables(root: str, storage: Storage) -> frozenset[str]:
    """The job's tables present under ``root`` (none if there is no such folder)."""
    try:
        parts = storage.list(root, suffixes=(".parquet",))
    except ObjectNotFound:
        return frozenset()
    return frozenset(part[len(root) + 1 :].split("/", 1)[0] for part in parts if "/" in part[len(root) + 1 :]) & OUTPUT_TABLES


def locate_pairs(uri: str, storage: Storage) -> PairSource:
    """``uri`` names a pairs file, a folder of pair parts, or a pair-generation output (it has ``summary.json``
    or the job's tables) or that output's ``pairs/``, which a run that paired nothing never creates."""
    if uri.lower().endswith(FILE_SUFFIXES):
        return PairSource(pairs=uri)
    root = uri.rstrip("/")
    tables = _tables(root, storage)
    if tables or storage.exists(join_uri(root, SUMMARY)):
        return PairSource(pairs=join_uri(root, "pairs"), output=root, tables=tables)
    parent, _, name = root.rpartition("/")
    if name == "pairs" and parent and storage.exists(join_uri(parent, SUMMARY)):
        return PairSource(pairs=root, output=parent, tables=_tables(parent, storage))
    return PairSource(pairs=uri)


def read_located_pairs(source: PairSource, storage: Storage) -> list[dict[str, Any]]:
    """The pairs :func:`locate_pairs` found; none for a pair-generation output that paired nothing."""
    return [] if source.empty else read_pairs(source.pairs, storage)


def read_any_pairs(uri: str, storage: Storage) -> list[dict[str, Any]]:
    """Every pair at ``uri`` (anything :func:`locate_pairs` takes); an output that paired nothing has none."""
    return read_located_pairs(locate_pairs(uri, storage), storage)


def read_parquet_rows(uri: str, storage: Storage) -> list[dict[str, Any]]:
    """Rows of a Parquet file, or of every ``.parquet`` part under a folder."""
    parts = [uri] if uri.lower().endswith(".parquet") else storage.list(uri, suffixes=(".parquet",))
    if not parts:
        raise ObjectNotFound(f"{uri}: no .parquet files")
    rows: list[dict[str, Any]] = []
    for part in parts:
        rows.extend(pq.read_table(io.BytesIO(storage.read_bytes(part))).to_pylist())
    return rows


def _json_field(row: dict[str, Any], field: str, uri: str, empty: Any) -> Any:
    text = row.get(field)
    if not text:
        return empty
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PairSchemaError(f"{uri}: video {row.get('video_id')!r}: field {field!r} is not valid JSON ({error.msg})") from None


def read_audit(uri: str, storage: Storage) -> dict[str, list[dict[str, Any]]]:
    """Audit rows (a file or folder of parts) by video id, candidates in order; ``reasoning``/``judge_failures`` parsed to dicts."""
    by_video: dict[str, list[dict[str, Any]]] = {}
    for row in read_parquet_rows(uri, storage):
        parsed = {**row, "reasoning": _json_field(row, "reasoning", uri, {}), "judge_failures": _json_field(row, "judge_failures", uri, {})}
        by_video.setdefault(row["video_id"], []).append(parsed)
    return {video_id: sorted(rows, key=lambda row: row["candidate"]) for video_id, rows in by_video.items()}


def read_videos(uri: str, storage: Storage) -> dict[str, dict[str, Any]]:
    """Per-video records (a file or folder of parts) by video id; ``clip_captions`` parsed to a list."""
    return {row["video_id"]: {**row, "clip_captions": _json_field(row, "clip_captions", uri, [])} for row in read_parquet_rows(uri, storage)}


def audit_and_videos(
    source: PairSource, audit_uri: str | None, storage: Storage
) -> tuple[dict[str, list[dict[str, Any]]] | None, dict[str, dict[str, Any]] | None]:
    """The audit (from ``--audit`` or the output's ``audit/``) and video records (the output's ``videos/``), None where absent."""
    if audit_uri is None and "audit" in source.tables:
        audit_uri = join_uri(source.output, "audit")
    audit = read_audit(audit_uri, storage) if audit_uri else None
    videos = read_videos(join_uri(source.output, "videos"), storage) if "videos" in source.tables else None
    return audit, videos
