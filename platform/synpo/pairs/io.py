"""Read and write preference pairs: Parquet (a file or a folder of parts), JSONL, and LLaMA-Factory /
ShareGPT-style preference JSON (``conversations``, ``chosen``, ``rejected``, ``videos``)."""

from __future__ import annotations

import io
import json
from pathlib import PurePosixPath
from typing import Any

import pyarrow.parquet as pq

from synpo.jsonl import jsonl_objects
from synpo.pairs.schema import PairSchemaError, to_table, validate_rows
from synpo.storage import Storage, join_uri, parse_uri

VIDEO_TAG = "<video>"


def _format_of(uri: str) -> str:
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "llamafactory"
    return "folder"


def _parse_jsonl(text: str, uri: str) -> list[dict[str, Any]]:
    return [row for _, row in jsonl_objects(text, uri, PairSchemaError)]


def _resolve(video: str, base_uri: str) -> str:
    """A relative video path in a pairs file is relative to that file's folder."""
    if not isinstance(video, str) or "://" in video or video.startswith("/"):
        return video
    return join_uri(parse_uri(base_uri).path.rsplit("/", 1)[0] if parse_uri(base_uri).scheme == "file" else base_uri.rsplit("/", 1)[0], video)


def parse_llamafactory(records: Any, uri: str) -> list[dict[str, Any]]:
    """Convert LLaMA-Factory / ShareGPT preference records into schema rows."""
    if not isinstance(records, list):
        raise PairSchemaError(f"{uri}: a LLaMA-Factory preference file holds a JSON list of records")
    rows = []
    for index, record in enumerate(records):
        try:
            human = [turn["value"] for turn in record["conversations"] if turn["from"] in ("human", "user")]
            videos = record.get("videos") or []
            chosen, rejected = record["chosen"], record["rejected"]
            chosen_text = chosen["value"] if isinstance(chosen, dict) else chosen
            rejected_text = rejected["value"] if isinstance(rejected, dict) else rejected
        except (KeyError, TypeError) as error:
            raise PairSchemaError(f"{uri}: record {index} is not a preference record (missing {error})") from None
        if len(videos) != 1 or not human:
            raise PairSchemaError(f"{uri}: record {index} needs exactly one video and a human turn, got {len(videos)} video(s)")
        rows.append(
            {
                "pair_id": f"{PurePosixPath(uri).stem}-{index:06d}",
                "video": _resolve(videos[0], uri),
                "prompt": human[-1].replace(VIDEO_TAG, "").strip(),
                "chosen": chosen_text,
                "rejected": rejected_text,
                "source": "llamafactory",
            }
        )
    return rows


def read_pairs(uri: str, storage: Storage | None = None) -> list[dict[str, Any]]:
    """Every pair at ``uri`` (Parquet file/folder, JSONL or LLaMA-Factory JSON), validated."""
    storage = storage or Storage()
    kind = _format_of(uri)
    if kind == "folder":
        parts = storage.list(uri, suffixes=(".parquet", ".jsonl"))
        if not parts:
            raise PairSchemaError(f"{uri}: no .parquet or .jsonl files in this folder")
        rows = []
        for part in parts:
            rows.extend(_read_file(part, _format_of(part), storage))
        return validate_rows(rows, uri)
    return validate_rows(_read_file(uri, kind, storage), uri)


def _read_file(uri: str, kind: str, storage: Storage) -> list[dict[str, Any]]:
    data = storage.read_bytes(uri)
    if kind in ("parquet", "jsonl"):
        rows = pq.read_table(io.BytesIO(data)).to_pylist() if kind == "parquet" else _parse_jsonl(data.decode("utf-8"), uri)
        return [{**row, "video": _resolve(row["video"], uri)} if "video" in row else row for row in rows]
    text = data.decode("utf-8")
    try:
        return parse_llamafactory(json.loads(text), uri)
    except json.JSONDecodeError as error:
        raise PairSchemaError(f"{uri}: not valid JSON ({error.msg} at line {error.lineno})") from None


def write_pairs(rows: list[dict[str, Any]], uri: str, storage: Storage | None = None) -> None:
    """Validate and write pairs to ``uri`` (``.parquet`` or ``.jsonl``), atomically."""
    storage = storage or Storage()
    checked = validate_rows(rows, uri)
    kind = _format_of(uri)
    if kind == "parquet":
        sink = io.BytesIO()
        pq.write_table(to_table(checked), sink)
        storage.write_bytes(uri, sink.getvalue())
    elif kind == "jsonl":
        storage.write_text(uri, "".join(json.dumps(row) + "\n" for row in checked))
    else:
        raise PairSchemaError(f"{uri}: write pairs to a .parquet or .jsonl file")
