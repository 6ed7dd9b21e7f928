"""Which checkpoints a run keeps (run.keep_checkpoints) and which files a resuming rank reads. The score Ray Train
keeps checkpoints by is a checkpoint's own validation, signed so higher is better; one without its own validation
(mid-epoch) or with a NaN ranks below every validated one."""

from __future__ import annotations

import pyarrow.fs as pafs

from synpo.training.checkpoints import UNVALIDATED, checkpoint_score, needed_to_resume, remove_orphans


def test_validated_checkpoints_rank_by_the_best_metric_and_the_rest_last():
    accuracy = [checkpoint_score(metrics, "val/accuracy", lower_is_better=False) for metrics in ({"val/accuracy": 0.5}, {"val/accuracy": 0.75}, {"step": 4})]
    assert accuracy == [0.5, 0.75, UNVALIDATED]
    loss = [checkpoint_score(metrics, "val/loss", lower_is_better=True) for metrics in ({"val/loss": 0.25}, {"val/loss": 0.5}, {"val/loss": float("nan")})]
    assert loss == [-0.25, -0.5, UNVALIDATED]  # the lower loss scores higher
    assert max(accuracy) == 0.75 and max(loss) == -0.25
    assert checkpoint_score({"val/loss": -5e29}, "val/loss", lower_is_better=False) > UNVALIDATED


def test_a_resuming_rank_reads_its_own_shards_and_the_shared_files_only():
    files = ["trainer_state.json", "latest", "state/mp_rank_00_model_states.pt", "torch_state.pt",
             "state/bf16_zero_pp_rank_1_mp_rank_00_optim_states.pt", "state/zero_pp_rank_1_mp_rank_00_model_states.pt",
             "state/bf16_zero_pp_rank_11_mp_rank_00_optim_states.pt", "adapter/adapter_model.safetensors"]  # fmt: skip
    assert [name for name in files if needed_to_resume(name, rank=1)] == files[:6]
    assert [name for name in files if needed_to_resume(name, rank=11)] == [*files[:4], files[6]]


def test_only_checkpoint_folders_ray_does_not_list_are_removed(tmp_path):
    for name in ("checkpoint_a", "checkpoint_b", "checkpoint_orphan", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint_manager_snapshot.json").write_text("{}")
    kept = {str(tmp_path / "checkpoint_a"), str(tmp_path / "checkpoint_b")}
    assert remove_orphans(pafs.LocalFileSystem(), str(tmp_path), kept) == [str(tmp_path / "checkpoint_orphan")]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint_a", "checkpoint_b", "checkpoint_manager_snapshot.json", "other"]
