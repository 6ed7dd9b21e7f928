"""Render a resolved config as commented YAML: every field with its help text and default."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import yaml


def _scalar(value: Any) -> str:
    if isinstance(value, pydantic.SecretStr):
        return '"**********"' if value.get_secret_value() else "null"
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return dumped.removesuffix("\n...").strip()


def _default_text(field: pydantic.fields.FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if isinstance(default, pydantic.BaseModel):
        return "see below"
    if isinstance(default, pydantic.SecretStr):
        return "unset" if not default.get_secret_value() else "set"
    return json.dumps(default, default=str)


def render_config(config: pydantic.BaseModel, indent: int = 0) -> str:
    """Commented YAML for ``config``: ``# help (default: X)`` above each ``key: value`` line."""
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(config).model_fields.items():
        value = getattr(config, name)
        help_text = field.description or ""
        lines.append(f"{pad}# {help_text} (default: {_default_text(field)})".replace("#  (", "# ("))
        if isinstance(value, pydantic.BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(render_config(value, indent + 1))
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return "\n".join(lines)
