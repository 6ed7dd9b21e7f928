"""The model resolver: local folders, s3:// prefixes (downloaded once per node), hub ids, toy://."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synpo.errors import ModelNotFound
from synpo.models import resolve_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "model-cache"
    monkeypatch.setenv("SYNPO_MODEL_CACHE", str(folder))
    return folder


def test_a_local_folder_is_used_as_is_and_a_half_written_one_is_refused(tiny_text_lm, tmp_path):
    assert resolve_model(str(tiny_text_lm)) == tiny_text_lm
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(tiny_text_lm / "config.json", half / "config.json")
    with pytest.raises(ModelNotFound, match=r"engine.model = .*has config.json but no weights"):
        resolve_model(str(half), field="engine.model")
    with pytest.raises(ModelNotFound, match="no model folder there"):
        resolve_model(str(tmp_path / "absent"))


def test_an_s3_prefix_is_downloaded_once_into_the_cache(s3_storage, tiny_text_lm, cache):
    storage, bucket = s3_storage
    for path in sorted(tiny_text_lm.iterdir()):
        if path.is_file():
            storage.write_bytes(f"s3://{bucket}/models/tiny-text/{path.name}", path.read_bytes())
    folder = resolve_model(f"s3://{bucket}/models/tiny-text", storage)
    assert folder.is_relative_to(cache)
    visible = sorted(path.name for path in tiny_text_lm.iterdir() if path.is_file() and not path.name.startswith((".", "_")))
    assert sorted(path.name for path in folder.iterdir()) == visible
    assert all((folder / name).read_bytes() == (tiny_text_lm / name).read_bytes() for name in visible)
    storage.delete(f"s3://{bucket}/models/tiny-text/config.json")  # a second resolve must not go back to S3
    assert resolve_model(f"s3://{bucket}/models/tiny-text", storage) == folder and (folder / "config.json").is_file()
    assert not list(folder.parent.glob(".tiny-text.partial-*"))


def test_an_s3_prefix_without_a_model_leaves_nothing_in_the_cache(s3_storage, cache):
    storage, bucket = s3_storage
    storage.write_text(f"s3://{bucket}/models/notes/readme.txt", "not a model")
    with pytest.raises(ModelNotFound, match="is not a model folder"):
        resolve_model(f"s3://{bucket}/models/notes", storage)
    assert not (cache / "s3" / bucket / "models" / "notes").exists()
    with pytest.raises(ModelNotFound, match="no objects under that prefix"):
        resolve_model(f"s3://{bucket}/models/nothing", storage)


def test_a_hub_id_comes_from_the_hub_cache_offline(tiny_text_lm, tmp_path, monkeypatch):
    """huggingface_hub's own cache layout (what a download leaves), read with HF_HUB_OFFLINE=1."""
    hub = tmp_path / "hub"
    snapshot = hub / "models--acme--tiny-text" / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_text_lm, snapshot)
    (hub / "models--acme--tiny-text" / "refs").mkdir()
    (hub / "models--acme--tiny-text" / "refs" / "main").write_text(snapshot.name)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert resolve_model("acme/tiny-text") == snapshot
    assert resolve_model("hf://acme/tiny-text") == snapshot
    with pytest.raises(ModelNotFound, match="hub id 'acme/absent' could not be fetched"):
        resolve_model("acme/absent")


def test_toy_models_are_built_once_per_cache(cache):
    folder = resolve_model("toy://tiny-text")
    assert folder == cache / "toy" / "tiny-text" and json.loads((folder / "synpo_toy_model.json").read_text())["kind"] == "text"
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert resolve_model("toy://tiny-text") == folder and (folder / "config.json").stat().st_mtime_ns == stamp
    with pytest.raises(ModelNotFound, match="no such toy model; choose one of toy://tiny-vlm"):
        resolve_model("toy://huge")


def test_two_processes_resolving_one_prefix_download_it_once(s3_storage, s3_endpoint, tiny_text_lm, cache):
    storage, bucket = s3_storage
    for path in sorted(tiny_text_lm.iterdir()):
        if path.is_file():
            storage.write_bytes(f"s3://{bucket}/models/shared/{path.name}", path.read_bytes())
    script = (
        "import sys; from synpo.models import resolve_model; from synpo.storage import Storage, StorageConfig; "
        f"s = Storage(StorageConfig(endpoint_url={s3_endpoint!r}, access_key_id='testing', secret_access_key='testing')); "
        f"f = resolve_model('s3://{bucket}/models/shared', s); print((f / 'config.json').stat().st_ino)"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    inodes = [process.communicate(timeout=120)[0].strip() for process in processes]
    assert all(process.returncode == 0 for process in processes) and inodes[0] == inodes[1]  # the same file: one download
