"""The one JSONL reader: every non-blank line a JSON object, errors naming the file and the line."""

from __future__ import annotations

import json
from typing import Any

from synpo.errors import UserError


def jsonl_objects(text: str, source: str, error_type: type[UserError] = UserError) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of ``text`` (read from ``source``); a line that is not
    a JSON object raises ``error_type`` (the caller's own error, e.g. ``PairSchemaError``) naming ``source`` and the line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise error_type(f"{source}: line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise error_type(f"{source}: line {number} is not a JSON object")
        rows.append((number, row))
    return rows
