"""A NaN loss on one of two workers is handled the same on both (a real two-rank gloo group, DeepSpeed ZeRO-2):
both skip the micro-batch together, or both stop with the same error naming the worker and the pair. Before the
ranks agreed on the flag, rank 1 raised while rank 0 waited in the gradient reduction until the timeout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from synpo.testing.loopback_server import free_port

SCRIPT = Path(__file__).with_name("nonfinite_rank.py")


def test_both_ranks_skip_or_stop_together(tiny_text_lm):
    port = str(free_port())
    ranks = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tiny_text_lm)],
            env={**os.environ, "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=240) for process in ranks]
    results = []
    for process, (stdout, stderr) in zip(ranks, outputs, strict=True):
        assert process.returncode == 0, stdout[-2000:] + stderr[-4000:]
        results.append(json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT ")).removeprefix("RESULT ")))

    skipped = [result["skip"] for result in results]
    assert [run["skipped"] for run in skipped] == [1, 1]
    assert [run["steps"] for run in skipped] == [2, 2]  # 4 micro-batches per rank, 2 per step: both steps made
    assert skipped[0]["logged_skips"] == [None, 1.0]  # the poisoned pair falls in the second step (seeded order)
    assert all(math.isfinite(loss) for loss in skipped[0]["losses"])  # the NaN never entered a logged mean
    assert skipped[0]["weights"] == skipped[1]["weights"] and all(math.isfinite(value) for value in skipped[0]["weights"])

    stopped = [result["stop"]["stopped"] for result in results]
    assert stopped[0] == stopped[1]
    assert "worker 1: loss nan from pairs ['rank1-pair2']" in stopped[0] and "worker 0" not in stopped[0]
    assert "optim.skip_nonfinite_batches" in stopped[0]
