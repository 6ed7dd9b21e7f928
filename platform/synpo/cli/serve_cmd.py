"""``synpo serve``: run the captioning API locally with Ray Serve (the app `serve run serve/config.yaml` deploys).

    synpo serve --model models:/synpo-captioner@champion            # follows the alias
    synpo serve --model toy://tiny-vlm --port 8011 batching.enabled=false
    synpo serve --config serve/config.yaml host=127.0.0.1 engine.device=cpu   # a Serve config's application args

Settings are one :class:`~synpo.serving.settings.ServeSettings` (``synpo config show serve``): from
``--config`` (a Serve config file, whose first application's ``args`` are used, or a plain settings
YAML), then the flags, then ``key=value``. Joins the Ray cluster at ``RAY_ADDRESS`` if set, else starts
a local one; Ctrl-C shuts Serve down.
"""

from __future__ import annotations

import argparse
import signal
import threading

import pydantic

from synpo.config.loader import ConfigError, apply_overrides, format_validation_error, read_yaml
from synpo.config.sections import RaySettings
from synpo.serving.settings import ServeSettings


def serve_settings(config: str | None, overrides: list[str]) -> ServeSettings:
    data = read_yaml(config) if config else {}
    if "applications" in data:
        applications = data["applications"] or []
        if not applications:
            raise ConfigError(f"{config}: no applications")
        data = applications[0].get("args") or {}
    try:
        return ServeSettings.model_validate(apply_overrides(data, ServeSettings, overrides))
    except pydantic.ValidationError as error:
        raise ConfigError(format_validation_error(error, config or "flags")) from None


def _stop_on_signals(stop: threading.Event) -> None:
    """Ctrl-C or a supervisor's SIGTERM sets ``stop`` (then Serve shuts down cleanly), whatever the process inherited:
    a process started in the background has SIGINT ignored, and Ray may replace Python's handler."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, frame: stop.set())


def _run(args: argparse.Namespace) -> int:
    flags = [f"{key}={value}" for key, value in (("model", args.model), ("adapter", args.adapter), ("host", args.host), ("port", args.port)) if value is not None]
    settings = serve_settings(args.config, [*flags, *args.overrides])
    from ray import serve

    from synpo.serving.deployment import build_app

    stop = threading.Event()
    _stop_on_signals(stop)
    RaySettings(num_cpus=args.num_cpus).init()
    serve.start(http_options={"host": settings.host, "port": settings.port, "request_timeout_s": settings.request_timeout_s})
    serve.run(build_app(settings), name=settings.name, route_prefix=settings.route_prefix, blocking=False)
    _stop_on_signals(stop)  # again: starting Ray and Serve may have replaced them
    print(f"serving {settings.model} as {settings.name!r} at http://{settings.host}:{settings.port}{settings.route_prefix.rstrip('/')}/v1 (Ctrl-C stops)", flush=True)
    try:
        while not stop.wait(timeout=1.0):  # a timed wait: signal handlers run between the waits
            pass
        print("shutting down", flush=True)
    finally:
        serve.shutdown()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve a captioner over HTTP (OpenAI-compatible) with Ray Serve, locally")
    parser.add_argument("--model", default=None, help="models:/NAME@ALIAS, models:/NAME/VERSION, toy://tiny-vlm or a model folder")
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder (for a folder model)")
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1; beyond loopback a token is required)")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    parser.add_argument("--config", default=None, help="serve/config.yaml (its first application's args) or a settings YAML")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray started when RAY_ADDRESS is unset")
    parser.add_argument("overrides", nargs="*", help="key=value settings (dotted keys, e.g. scaling.max_replicas=4)")
    parser.set_defaults(handler=_run)
