"""A rerun under the same run.name continues only the same training: refused on other data-shaping settings,
continued when only longer, and reported finished (with the earlier result) when nothing changed."""

from __future__ import annotations

import json

import pytest

from synpo.config.loader import ConfigError
from synpo.storage import Storage
from synpo.training.config import TrainConfig
from synpo.training.run_record import RESULT_FILE, SETTINGS_FILE, check_and_record, pairs_digest

ROWS = [
    {"pair_id": f"p{index}", "video": f"v{index}.mp4", "prompt": "Describe.", "chosen": f"good {index}", "rejected": f"bad {index}"}
    for index in range(3)
]


def config(tmp_path, **fields) -> TrainConfig:
    return TrainConfig.model_validate({"pairs": "/data/pairs", "model": "/models/m", "run": {"name": "r", "storage_path": str(tmp_path)}, **fields})


def test_the_pairs_digest_follows_content_not_order():
    assert pairs_digest(ROWS) == pairs_digest(list(reversed(ROWS)))
    swapped = [{**ROWS[0], "chosen": ROWS[0]["rejected"], "rejected": ROWS[0]["chosen"]}, *ROWS[1:]]
    assert len({pairs_digest(ROWS), pairs_digest(swapped), pairs_digest(ROWS[:2])}) == 3


def test_a_new_run_is_recorded_and_a_rerun_before_it_finished_continues(tmp_path):
    storage, digest = Storage(), pairs_digest(ROWS)
    assert check_and_record(config(tmp_path), digest, storage) is None
    recorded = json.loads((tmp_path / "r" / SETTINGS_FILE).read_text())
    assert recorded["settings"]["objective"] == "synpo" and recorded["settings"]["pairs_digest"] == digest
    assert recorded["length"] == {"optim": {"epochs": 5, "max_steps": None}}
    # where and how fast it runs may change between attempts
    moved = config(tmp_path, mlflow={"tracking_uri": "sqlite:///other.db"}, data={"num_workers": 0}, run={"name": "r", "storage_path": str(tmp_path), "max_failures": 5})
    assert check_and_record(moved, digest, storage) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"objective": "dpo"}, "objective: 'synpo' -> 'dpo'"),
        ({"pairs": "/data/other"}, "pairs: '/data/pairs' -> '/data/other'"),
        ({"optim": {"learning_rate": 1e-4}}, "optim.learning_rate: 5e-06 -> 0.0001"),
        ({"lora": {"rank": 8}}, "lora.rank: 128 -> 8"),
        ({"scaling": {"num_workers": 4}}, "scaling.num_workers: 2 -> 4"),
    ],
)
def test_a_rerun_with_other_shaping_settings_is_refused_naming_them(tmp_path, change, named):
    storage = Storage()
    check_and_record(config(tmp_path), pairs_digest(ROWS), storage)
    with pytest.raises(ConfigError, match="run.name = 'r' was trained with other settings") as error:
        check_and_record(config(tmp_path, **change), pairs_digest(ROWS), storage)
    assert named in str(error.value) and "Use a new run.name" in str(error.value)


def test_new_content_under_the_same_pairs_uri_is_refused(tmp_path):
    storage = Storage()
    check_and_record(config(tmp_path), pairs_digest(ROWS), storage)
    with pytest.raises(ConfigError, match="pairs_digest"):
        check_and_record(config(tmp_path), pairs_digest(ROWS[:2]), storage)


def test_a_finished_run_returns_its_result_unless_it_is_made_longer(tmp_path):
    storage, digest = Storage(), pairs_digest(ROWS)
    check_and_record(config(tmp_path, optim={"epochs": 1}), digest, storage)
    (tmp_path / "r" / RESULT_FILE).write_text(json.dumps({"steps": 3, "model_version": "1"}))
    assert check_and_record(config(tmp_path, optim={"epochs": 1}), digest, storage) == {"steps": 3, "model_version": "1"}
    assert check_and_record(config(tmp_path, optim={"epochs": 2}), digest, storage) is None  # continues for another epoch
    assert json.loads((tmp_path / "r" / SETTINGS_FILE).read_text())["length"]["optim"]["epochs"] == 2
