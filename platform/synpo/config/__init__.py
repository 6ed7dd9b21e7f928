"""Typed job configs: pydantic models loaded from YAML with ``key=value`` overrides."""

from synpo.config.base import StrictModel
from synpo.config.loader import ConfigError, load_config
from synpo.config.render import render_config

__all__ = ["ConfigError", "StrictModel", "load_config", "render_config"]
