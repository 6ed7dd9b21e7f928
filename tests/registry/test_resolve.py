"""Registered captioners resolve by version and by alias to local folders, once per node; bad URIs are clear errors."""

from __future__ import annotations

import mlflow
import pytest

from registry_support import register_versions
from synpo.errors import ModelNotFound
from synpo.registry.resolve import resolve_captioner
from synpo.training.config import LoraSettings
from synpo.training.model import add_lora, load_base


@pytest.fixture(scope="module")
def registry(tiny_text_lm, tmp_path_factory):
    """A sqlite registry with model 'cap': versions 1 (alias champion) and 2 record the base model's path, 3 bundles it."""
    folder = tmp_path_factory.mktemp("registry")
    tracking = f"sqlite:///{folder}/mlflow.db"
    adapter = folder / "lora-weights"  # MLflow keeps the folder's own name under artifacts/
    base, _ = load_base(tiny_text_lm)
    add_lora(base, LoraSettings(rank=4, alpha=8)).save_pretrained(adapter)
    register_versions(tracking, folder / "artifacts", "cap", [
        {"adapter_dir": str(adapter), "base_model_dir": str(tiny_text_lm), "include_base": bundle, "video": {"num_frames": 8}, "prompt": prompt}
        for prompt, bundle in (("first", False), ("second", False), ("third", True))
    ])  # fmt: skip
    mlflow.MlflowClient(tracking).set_registered_model_alias("cap", "champion", "1")
    return tracking


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNPO_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_version_and_an_alias_resolve_to_the_logged_folders(registry, tiny_text_lm, cache):
    second = resolve_captioner("models:/cap/2", registry)
    assert (second.name, second.version, second.settings["prompt"], second.settings["max_new_tokens"]) == ("cap", "2", "second", 16)
    assert second.base_model == tiny_text_lm.resolve() and (second.adapter / "adapter_config.json").is_file()
    assert second.adapter.is_relative_to(cache / "registry" / "cap") and second.adapter.relative_to(cache / "registry" / "cap").parts[0].startswith("2-")
    champion = resolve_captioner("models:/cap@champion", registry)
    assert (champion.uri, champion.version, champion.settings["prompt"]) == ("models:/cap@champion", "1", "first")
    bundled = resolve_captioner("models:/cap/3", registry)
    assert bundled.base_model.relative_to(cache / "registry" / "cap").parts[0].startswith("3-")
    assert (bundled.base_model / "config.json").read_bytes() == (tiny_text_lm / "config.json").read_bytes()


def test_a_version_is_downloaded_once_per_node(registry, cache, monkeypatch):
    first = resolve_captioner("models:/cap/1", registry)

    def no_download(**kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", no_download)
    assert resolve_captioner("models:/cap@champion", registry).adapter == first.adapter


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/cap/9", r"models:/cap/9: model 'cap' has no version 9 \(versions: 1, 2, 3\)"),
        ("models:/cap@nope", r"models:/cap@nope: model 'cap' has no alias 'nope' \(versions: 1, 2, 3\)"),
        ("models:/other/1", r"no registered model 'other' has versions"),
        ("models:/cap", r"is not a registry URI: use models:/NAME/VERSION or models:/NAME@ALIAS"),
    ],
)
def test_unknown_versions_aliases_and_models_are_clear_errors(registry, cache, uri, message):
    with pytest.raises(ModelNotFound, match=message):
        resolve_captioner(uri, registry)
    assert not (cache / "registry").exists() or not any((cache / "registry").rglob("MLmodel"))


def test_two_registries_with_the_same_name_and_version_do_not_share_a_cache_entry(registry, tiny_text_lm, cache, tmp_path):
    other = f"sqlite:///{tmp_path}/other.db"
    adapter = tmp_path / "other-adapter"
    base, _ = load_base(tiny_text_lm)
    add_lora(base, LoraSettings(rank=2, alpha=4)).save_pretrained(adapter)
    register_versions(other, tmp_path / "artifacts", "cap", [{"adapter_dir": str(adapter), "base_model_dir": str(tiny_text_lm), "prompt": "other"}])
    ours, theirs = resolve_captioner("models:/cap/1", registry), resolve_captioner("models:/cap/1", other)
    assert ours.adapter != theirs.adapter and (ours.settings["prompt"], theirs.settings["prompt"]) == ("first", "other")
