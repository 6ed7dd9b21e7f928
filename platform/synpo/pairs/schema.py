"""The preference-pair schema: the contract between pair generation and training.

One row per pair. Required: ``pair_id``, ``video`` (URI), ``prompt``, ``chosen``, ``rejected``. The
rest is provenance and audit (scores, who generated and judged it) plus optional precomputed
reference log-likelihoods for reference-based objectives (DPO & co.).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from synpo.errors import UserError

REQUIRED_TEXT = ("pair_id", "video", "prompt", "chosen", "rejected")

PAIR_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("video", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("video_id", pa.string()),
        pa.field("chosen_score", pa.float64()),
        pa.field("rejected_score", pa.float64()),
        pa.field("source", pa.string()),  # "pipeline", "toy", "llamafactory", ...
        pa.field("generator", pa.string()),  # model that wrote the candidates
        pa.field("judge", pa.string()),  # judge model / backend and prompt version
        pa.field("created_at", pa.string()),  # ISO-8601 UTC
        pa.field("ref_chosen_logp", pa.float64()),  # sum log pi_ref(chosen), precomputed
        pa.field("ref_rejected_logp", pa.float64()),
    ]
)
FIELD_NAMES = tuple(PAIR_SCHEMA.names)
FLOAT_FIELDS = {field.name for field in PAIR_SCHEMA if pa.types.is_floating(field.type)}


class PairSchemaError(UserError, ValueError):
    """A pairs file that does not match the schema; names the file, the row and the field."""


def validate_row(row: dict[str, Any], index: int, source: str) -> dict[str, Any]:
    """Check one row and return it with every schema field present (missing optional ones as None)."""
    where = f"{source}: row {index}" + (f" (pair_id {row['pair_id']!r})" if isinstance(row.get("pair_id"), str) else "")
    unknown = sorted(set(row) - set(FIELD_NAMES))
    if unknown:
        raise PairSchemaError(f"{where}: unknown field(s) {unknown}; the schema has {', '.join(FIELD_NAMES)}")
    for name in REQUIRED_TEXT:
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise PairSchemaError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
    if row["chosen"].strip() == row["rejected"].strip():
        raise PairSchemaError(f"{where}: chosen and rejected are the same text")
    for name in FLOAT_FIELDS:
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise PairSchemaError(f"{where}: field {name!r} must be a number or null, got {value!r}")
    return {name: row.get(name) for name in FIELD_NAMES}


def validate_rows(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Validate every row (failing on the first bad one) and check pair ids are unique."""
    if not rows:
        raise PairSchemaError(f"{source}: no pairs (the dataset is empty)")
    checked = [validate_row(row, index, source) for index, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for index, row in enumerate(checked):
        if row["pair_id"] in seen:
            raise PairSchemaError(f"{source}: row {index} repeats pair_id {row['pair_id']!r} of row {seen[row['pair_id']]}")
        seen[row["pair_id"]] = index
    return checked


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([{name: row.get(name) for name in FIELD_NAMES} for row in rows], schema=PAIR_SCHEMA)
