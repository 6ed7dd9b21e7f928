"""One rank of a two-rank gloo group training the tiny text model with DeepSpeed ZeRO-2, where only rank 1
meets a pair whose loss is NaN (a corrupt precomputed reference log-prob).

    RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=p python tests/training/nonfinite_rank.py MODEL_DIR

Runs twice in one process group: with ``optim.skip_nonfinite_batches=1`` (both ranks skip that micro-batch and
finish) and with 0 (both ranks stop). Prints one line, ``RESULT {json}``. Used by test_nonfinite_agreement.py.
"""

from __future__ import annotations

import json
import sys

import deepspeed
import torch

from synpo.training.batches import InMemoryBatches
from synpo.training.collate import PairCollator, PairExample
from synpo.training.collectives import gather_objects, make_all_true, make_reducer
from synpo.training.config import (
    DeepSpeedSettings,
    DiagnosticsSettings,
    LoraSettings,
    OptimSettings,
    ScalingSettings,
    TrainConfig,
)
from synpo.training.recipe import build_trainer, load_policy
from synpo.training.step import NonFiniteLossError
from synpo.training.trainer import LoopHooks

CPU = torch.device("cpu")
POISONED = "rank1-pair2"


def examples(rank: int) -> list[PairExample]:
    colours = ["red", "blue", "green", "yellow"]
    rows = []
    for index in range(4):
        pair_id = f"rank{rank}-pair{index}"
        reference = float("nan") if pair_id == POISONED else -20.0
        rows.append(PairExample(pair_id, "Describe the video.", f"a {colours[index]} circle moves left", f"a {colours[index - 1]} square moves up",
                                ref_chosen_logp=reference, ref_rejected_logp=-20.0))  # fmt: skip
    return rows


def run(model_dir: str, rank: int, skip: int) -> dict:
    config = TrainConfig(
        pairs="in-memory", model=model_dir, objective="dpo", reference="precomputed",
        lora=LoraSettings(rank=4, alpha=8, dropout=0.0),
        optim=OptimSettings(learning_rate=1e-2, effective_batch_size=4, micro_batch_size=1, epochs=1, skip_nonfinite_batches=skip),
        diagnostics=DiagnosticsSettings(grad_norm_every_steps=0),
        scaling=ScalingSettings(num_workers=2), deepspeed=DeepSpeedSettings(zero_stage=2),
    )  # fmt: skip
    policy = load_policy(config, model_dir)
    rows: list[dict] = []
    hooks = LoopHooks(
        log=lambda row, step: rows.append(row), reduce=make_reducer(CPU), all_true=make_all_true(CPU), gather=gather_objects
    )
    trainer = build_trainer(config, policy, InMemoryBatches(examples(rank), PairCollator(policy.processor, 32), config), world_size=2, hooks=hooks)
    try:
        result = trainer.fit()
    except NonFiniteLossError as error:
        return {"stopped": str(error)}
    weights = torch.cat([parameter.detach().flatten() for _, parameter in sorted(policy.model.named_parameters()) if parameter.requires_grad])
    return {
        "steps": result.steps, "skipped": result.skipped_batches, "logged_skips": [row.get("skipped_batches") for row in rows],
        "losses": [row["loss"] for row in rows], "weights": weights.tolist(),
    }  # fmt: skip


def main() -> None:
    deepspeed.init_distributed(dist_backend="gloo")
    rank = torch.distributed.get_rank()
    outcome = {"skip": run(sys.argv[1], rank, skip=1), "stop": run(sys.argv[1], rank, skip=0)}
    print("RESULT " + json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
