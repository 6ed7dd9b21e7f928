"""Load a typed job config from YAML plus dotted ``key=value`` overrides.

Every job has one pydantic model (``extra="forbid"``). Loading goes:

    YAML file  ->  dict  ->  apply overrides (``sampling.temperature=0.7``)  ->  model_validate

and any problem — a missing file, a key the model does not have, a value of the wrong type or out
of range — raises :class:`ConfigError` before any work starts. The message names the field, the
value that was given and what is allowed, e.g.::

    config error (jobs/configs/pairs.yaml + overrides):
      sampling.temperature = -1: Input should be greater than 0
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from synpo.errors import UserError

ConfigT = TypeVar("ConfigT", bound=pydantic.BaseModel)


class ConfigError(UserError, ValueError):
    """A job config that cannot be used; the message says which field and why."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into (``["a", "b", "c"]``, parsed value).

    The value is parsed as YAML so ``n=4`` gives an int, ``flag=true`` a bool, ``ids=[1,2]`` a list
    and ``name=abc`` a string. ``key=`` (nothing after ``=``) gives ``None``.
    """
    key, sep, raw_value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. sampling.n=4)")
    parts = key.strip().split(".")
    if any(not part for part in parts):
        raise ConfigError(f"override {text!r} has an empty key segment in {key!r}")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value {raw_value!r} is not valid YAML ({error})") from error
    return parts, value


def _check_key_path(model: type[pydantic.BaseModel], parts: list[str], original: str) -> None:
    """Fail if ``parts`` does not name a field of ``model`` (descending into nested models)."""
    current: type[pydantic.BaseModel] | None = model
    for depth, part in enumerate(parts):
        if current is None:
            prefix = ".".join(parts[:depth])
            raise ConfigError(f"override {original!r}: {prefix!r} is a plain value and has no field {part!r}")
        fields = current.model_fields
        if part not in fields:
            prefix = ".".join(parts[:depth])
            where = f"in {prefix!r}" if prefix else "at the top level"
            raise ConfigError(
                f"override {original!r}: unknown key {part!r} {where}; allowed keys: {', '.join(sorted(fields))}"
            )
        current = _nested_model(fields[part].annotation)


def _nested_model(annotation: Any) -> type[pydantic.BaseModel] | None:
    """The config section an annotation holds: ``Section`` or ``Section | None`` (a section that may be left out)."""
    members = [member for member in typing.get_args(annotation) if member is not type(None)] or [annotation]
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], pydantic.BaseModel):
        return members[0]
    return None


def apply_overrides(data: dict[str, Any], model: type[pydantic.BaseModel], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key=value`` override applied (keys checked against ``model``)."""
    merged = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        _check_key_path(model, parts, text)
        node = merged
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return merged


def _deep_copy(data: dict[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, dict) else value for key, value in data.items()}


def format_validation_error(error: pydantic.ValidationError, source: str) -> str:
    """One line per problem: ``field.path = value: what is allowed``."""
    lines = [f"config error ({source}):"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "<root>"
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {field} = {problem['input']!r}: unknown key (not a field of this config)")
        elif problem["type"] == "missing":
            lines.append(f"  {field}: required field is missing")
        elif problem["type"] == "value_error" and isinstance(problem["input"], dict):
            where = "" if not problem["loc"] else f"{field}: "  # a check across fields: the message names them
            lines.append(f"  {where}{problem['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {field} = {problem['input']!r}: {problem['msg']}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; an empty file is an empty mapping."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(file)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(file)!r} is not valid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(file)!r} must hold a mapping at the top, not {type(data).__name__}")
    return data


PRESET_SECTIONS = ("pairs", "train", "eval")  # the jobs a model preset (jobs/configs/models/*.yaml) has settings for


def read_preset(path: str | Path, section: str) -> dict[str, Any]:
    """The ``section`` (a job: pairs, train, eval) of the model preset at ``path``: what the model needs in that job."""
    data = read_yaml(path)
    unknown = sorted(set(data) - set(PRESET_SECTIONS))
    if unknown:
        raise ConfigError(f"model preset {str(path)!r}: unknown section(s) {unknown}; a preset has sections {', '.join(PRESET_SECTIONS)}")
    if section not in data:
        raise ConfigError(f"model preset {str(path)!r} has no {section!r} section (it has: {', '.join(data) or 'none'})")
    if not isinstance(data[section], dict):
        raise ConfigError(f"model preset {str(path)!r}: section {section!r} must be a mapping, not {type(data[section]).__name__}")
    return data[section]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it; nested mappings merge key by key, anything else is replaced."""
    merged = _deep_copy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value) if isinstance(value, dict) else value
    return merged


def load_config(
    model: type[ConfigT],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    preset: str | Path | None = None,
    section: str | None = None,
) -> ConfigT:
    """Build ``model`` from an optional YAML file, the ``section`` of an optional model preset laid over it, and
    ``key=value`` overrides last, validating everything."""
    data = read_yaml(path) if path is not None else {}
    if preset is not None:
        if section is None:
            raise ValueError("a model preset needs the job's section name")
        data = deep_merge(data, read_preset(preset, section))
    overrides = list(overrides or [])
    merged = apply_overrides(data, model, overrides)
    parts = (str(path) if path else "defaults", f"{preset}[{section}]" if preset else "", "overrides" if overrides else "")
    source = " + ".join(part for part in parts if part)
    try:
        return model.model_validate(merged)
    except pydantic.ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def config_from_fields(model: type[ConfigT], source: str, **fields: Any) -> ConfigT:
    """Build ``model`` from values given one by one (command-line flags); a bad value is a :class:`ConfigError`."""
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None
