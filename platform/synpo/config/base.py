"""The base class every job config derives from."""

from __future__ import annotations

import pydantic


class StrictModel(pydantic.BaseModel):
    """A config section: unknown keys are errors, every field has help text, and it is never changed once
    validated (frozen: assigning a field raises; derive a changed copy with ``model_copy(update=...)``)."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def differences(old: object, new: object, prefix: str = "") -> list[str]:
    """``"key.path: old -> new"`` for every leaf that differs between two nested dicts (settings as JSON)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [diff for key in sorted(set(old) | set(new)) for diff in differences(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]
