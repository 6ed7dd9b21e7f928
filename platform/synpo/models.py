"""Where a model comes from: the one resolver every job, Ray worker and engine uses.

    resolve_model("runs/models/my-vlm")            a local Hugging Face folder (config.json + weights)
    resolve_model("s3://bucket/models/qwen2-vl")   downloaded once per node into the model cache
    resolve_model("Qwen/Qwen2-VL-7B-Instruct")     a hub id (or hf://...), from the hub or its local cache
    resolve_model("toy://tiny-vlm")                the tiny toy VLM, built once per node into the model cache

Each returns a local folder a ``from_pretrained`` can load. Call it where the model is loaded (the
engine actor, the training worker): on a cluster every node resolves for itself, and the cache makes
the second call on a node free. Downloads and builds go into a temporary sibling folder that is
renamed into place when complete, under a file lock, so concurrent resolvers on one node fetch once
and nobody ever loads a half-written folder.

The model cache is ``$SYNPO_MODEL_CACHE``, else ``~/.cache/synpo/models``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from synpo.errors import ModelNotFound
from synpo.storage import Storage, parse_uri

logger = logging.getLogger(__name__)

# toy://NAME -> (kind, warm-start steps): what synpo.toy.model.build_tiny_model builds
TOY_MODELS = {"tiny-vlm": ("vlm", 300), "tiny-vlm-untrained": ("vlm", 0), "tiny-text": ("text", 0)}
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
COMPLETE_MARKER = ".synpo-complete"


def model_cache_dir() -> Path:
    return Path(os.environ.get("SYNPO_MODEL_CACHE") or Path.home() / ".cache" / "synpo" / "models")


def has_weights(folder: Path) -> bool:
    """Whether a model folder holds weights: ``*.safetensors`` / ``*.bin`` files or their index json."""
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or any(folder.glob("*.index.json"))


def check_model_folder(folder: Path, uri: str, field: str) -> Path:
    """``folder`` if it is a complete Hugging Face model; else :class:`ModelNotFound` naming ``field`` and ``uri``."""
    if not (folder / "config.json").is_file():
        raise ModelNotFound(f"{field} = {uri!r}: {str(folder)!r} is not a model folder (no config.json)")
    if not has_weights(folder):
        raise ModelNotFound(
            f"{field} = {uri!r}: {str(folder)!r} has config.json but no weights (*.safetensors, *.bin or their index json): "
            "a half-written model folder; copy or save the model there again"
        )
    return folder


@contextmanager
def folder_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock on building ``target`` (a sibling ``.<name>.lock``; released when the process dies too)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process building %s", target)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def fill_into_place(target: Path, fill: Callable[[Path], None]) -> Path:
    """``fill`` a fresh hidden sibling of ``target``, then rename it to ``target`` (an existing ``target``
    is first renamed aside, then deleted). The caller holds :func:`folder_lock` for ``target``, so any
    sibling left from an earlier fill belongs to a killed process and is removed first. Nobody ever
    sees ``target`` half-filled."""
    for stale in [*target.parent.glob(f".{target.name}.partial-*"), *target.parent.glob(f".{target.name}.trash-*")]:
        shutil.rmtree(stale)
    partial = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir()
    try:
        fill(partial)
        if target.exists():
            trash = target.parent / f".{target.name}.trash-{uuid.uuid4().hex[:8]}"
            os.rename(target, trash)
            os.rename(partial, target)
            shutil.rmtree(trash)
        else:
            os.rename(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return target


def publish_folder(target: Path, fill: Callable[[Path], None]) -> Path:
    """Make ``target`` exist complete: unless it already does, :func:`fill_into_place` under :func:`folder_lock`.

    A second caller waits on the lock and then finds it done. ``target`` counts as complete once it
    exists (only a finished rename creates it)."""
    if target.is_dir():
        return target
    with folder_lock(target):
        if not target.is_dir():
            fill_into_place(target, fill)
    return target


def absolute_model_uri(uri: str | None) -> str | None:
    """A relative local model folder made absolute (Ray workers run elsewhere); URIs and hub ids unchanged."""
    if uri is None or "://" in uri or (HUB_ID.fullmatch(uri) and not Path(uri).exists()):
        return uri
    return str(Path(uri).expanduser().resolve())


def resolve_model(uri: str, storage: Storage | None = None, field: str = "model") -> Path:
    """The local folder of the model ``uri`` names (see the module docstring); ``field`` names the setting in errors."""
    if uri.startswith("toy://"):
        return _toy_model(uri, field)
    if uri.startswith("s3://"):
        return _s3_model(uri, storage or Storage(), field)
    if uri.startswith("hf://"):
        return _hub_model(uri.removeprefix("hf://"), uri, field)
    folder = Path(parse_uri(uri).path)
    if folder.exists() or not HUB_ID.fullmatch(uri):
        if not folder.exists():
            raise ModelNotFound(f"{field} = {uri!r}: no model folder there (give a folder, s3://, a hub id or toy://tiny-vlm)")
        return check_model_folder(folder, uri, field)
    return _hub_model(uri, uri, field)


def _toy_model(uri: str, field: str) -> Path:
    name = uri.removeprefix("toy://").strip("/")
    if name not in TOY_MODELS:
        raise ModelNotFound(f"{field} = {uri!r}: no such toy model; choose one of {', '.join(f'toy://{known}' for known in TOY_MODELS)}")
    from synpo.toy.model import build_tiny_model

    kind, warm_start_steps = TOY_MODELS[name]
    return build_tiny_model(model_cache_dir() / "toy" / name, kind=kind, warm_start_steps=warm_start_steps)


def _s3_model(uri: str, storage: Storage, field: str) -> Path:
    location = parse_uri(uri)
    target = model_cache_dir() / "s3" / location.bucket / location.key.strip("/")

    def download(partial: Path) -> None:
        prefix = uri.rstrip("/")
        objects = storage.list(prefix)
        if not objects:
            raise ModelNotFound(f"{field} = {uri!r}: no objects under that prefix")
        logger.info("downloading %d files of %s into %s", len(objects), uri, target)
        for object_uri in objects:
            storage.download(object_uri, partial / object_uri[len(prefix) + 1 :])
        check_model_folder(partial, uri, field)

    return publish_folder(target, download)


def _hub_model(repo_id: str, uri: str, field: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise ModelNotFound(
            f"{field} = {uri!r}: not a local folder, and the hub id {repo_id!r} could not be fetched "
            f"(offline, or not in the hub cache: {type(error).__name__}); download it where a network exists, "
            "or give the model's folder or s3:// prefix"
        ) from None
    return check_model_folder(folder, uri, field)
