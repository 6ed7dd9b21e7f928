"""A registered captioner, by version or alias, as local folders an engine can load.

    captioner = resolve_captioner("models:/synpo-captioner@champion", tracking_uri)
    HFEngine(captioner.base_model, adapter=captioner.adapter)   # or VLLMEngine(..., adapter=...)

``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` (MLflow's own URIs). The version's model
(what :func:`~synpo.registry.captioner_model.log_captioner` logged: the adapter, the base model or
its recorded path, and the captioning settings) is downloaded once per node into the model cache
(``registry/NAME/VERSION-RUN``, atomically, like every cached model), so evaluation and serving load the
exact weights a version names. An alias is read at call time: the caller records which version it got.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from synpo.errors import ModelNotFound
from synpo.models import check_model_folder, model_cache_dir, publish_folder

REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$")


@dataclass(frozen=True)
class Captioner:
    uri: str  # as asked (an alias stays an alias)
    name: str
    version: str  # the version the URI named when resolved
    base_model: Path
    adapter: Path
    settings: dict[str, Any]  # video sampling, prompt, max_new_tokens (the training run's)


def is_registry_uri(uri: str) -> bool:
    return uri.startswith("models:/")


def _version(client, uri: str):
    from mlflow.exceptions import MlflowException

    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ModelNotFound(f"{uri!r} is not a registry URI: use models:/NAME/VERSION or models:/NAME@ALIAS")
    name = match["name"]
    try:
        if match["alias"]:
            return client.get_model_version_by_alias(name, match["alias"])
        return client.get_model_version(name, match["version"])
    except MlflowException as error:
        known = sorted(int(version.version) for version in client.search_model_versions(f"name = '{name}'"))
        if not known:
            raise ModelNotFound(f"{uri}: no registered model {name!r} has versions in this registry") from error
        what = f"alias {match['alias']!r}" if match["alias"] else f"version {match['version']}"
        raise ModelNotFound(f"{uri}: model {name!r} has no {what} (versions: {', '.join(map(str, known))})") from error


def resolve_captioner(uri: str, tracking_uri: str) -> Captioner:
    """The version ``uri`` names, downloaded (once per node) and checked; ``ModelNotFound`` says what is missing."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    version = _version(client, uri)
    # Keyed by the run that logged it too: another registry (or a recreated one) may have its own version 1 of this name.
    origin = version.run_id or hashlib.sha256(str(version.source).encode()).hexdigest()
    target = model_cache_dir() / "registry" / version.name / f"{version.version}-{origin[:12]}"

    def download(partial: Path) -> None:
        location = client.get_model_version_download_uri(version.name, version.version)  # where the artifacts are stored
        staging = partial / ".download"
        model_root = Path(mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=str(staging), tracking_uri=tracking_uri))
        for item in model_root.iterdir():  # the model's own files (MLmodel, artifacts/...) at the top of the cache folder
            item.rename(partial / item.name)
        shutil.rmtree(staging)

    folder = publish_folder(target, download)
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    settings = flavor.get("config") or {}  # the model_config log_captioner gave
    artifacts = {key: folder / entry["path"] for key, entry in (flavor.get("artifacts") or {}).items()}  # MLmodel says where each went
    base = artifacts.get("base_model") or Path(settings.get("base_model_path", ""))
    check_model_folder(base, uri, f"base model of version {version.version}")
    adapter = artifacts.get("adapter")
    if adapter is None or not (adapter / "adapter_config.json").is_file():
        raise ModelNotFound(f"{uri} (version {version.version}): the logged model has no LoRA adapter (artifact 'adapter')")
    return Captioner(uri=uri, name=version.name, version=str(version.version), base_model=base, adapter=adapter, settings=settings)
