"""Pair generation end to end: videos/min, and whether judging overlaps sampling.

Three measurements in one Ray session, on the same toy videos with the warm-started tiny VLM on CPU
and the loopback judge server (OpenAI protocol) answering every call after ``--judge-latency-ms``:

1. the streaming job (decode -> engine actors -> async judge actors -> writer): wall time W;
2. sampling alone: the same job with a judge that answers at once (latency 0): time S;
3. judging alone: the same judge inputs (read back from run 1's audit and videos tables) through
   ``Judge.judge_videos`` with the same latency and bounds, no Ray: time J.

If judging overlaps sampling, W is well under S + J (ideally near max(S, J)); S and W both include
the job's fixed start-up (actors loading the model), so the job's own per-stage timeline (each
stage's first start to last finish, and how long sampling and judging ran at the same time) is
printed too.

    .venv/bin/python bench/pairs_pipeline.py [--videos 12] [--n 6] [--judge-latency-ms 1000] [--judge-concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from synpo.config.loader import load_config
from synpo.judging.judge import Judge
from synpo.judging.results import JudgeInput
from synpo.pairgen.config import PairsConfig
from synpo.pairgen.pipeline import run_pairs
from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer
from synpo.toy.model import build_tiny_model
from synpo.toy.videos import ToyVideoSpec, write_toy_videos

REPO = Path(__file__).resolve().parents[1]


def job_config(args: argparse.Namespace, model: Path, videos: Path, output: Path, base_url: str) -> PairsConfig:
    overrides = [
        f"engine.model={model}", f"input={videos}", f"output={output}", "mlflow.enabled=false",
        f"candidates.sampling.n={args.n}", f"candidates.sampling.max_new_tokens={args.max_new_tokens}", "clips.max_new_tokens=32",
        "judge.backend=openai", f"judge.base_url={base_url}", f"judge.max_concurrency={args.judge_concurrency}", "judge.min_margin=0",
        "engine_pool.batch_size=1", "judge_pool.batch_size=2", "write_batch_size=2",
    ]  # fmt: skip
    return load_config(PairsConfig, REPO / "jobs/configs/pairs_local.yaml", overrides)


def judge_inputs(output: Path) -> list[JudgeInput]:
    read = lambda name: pa.concat_tables([pq.read_table(path) for path in sorted((output / name).glob("*.parquet"))]).to_pylist()  # noqa: E731
    audit = read("audit")
    inputs = []
    for video in read("videos"):
        candidates = sorted((row["candidate"], row["text"]) for row in audit if row["video_id"] == video["video_id"])
        inputs.append(JudgeInput(video_id=video["video_id"], prompt=video["prompt"], candidates=[text for _, text in candidates],
                                 clip_captions=json.loads(video["clip_captions"])))  # fmt: skip
    return inputs


async def judge_alone(config: PairsConfig, inputs: list[JudgeInput]) -> float:
    start = time.perf_counter()
    async with Judge(config.judge) as judge:
        await judge.judge_videos(inputs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=12, help="toy videos")
    parser.add_argument("--n", type=int, default=6, help="candidates per video")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens per candidate pass")
    parser.add_argument("--judge-latency-ms", type=float, default=1000, help="loopback judge latency per call")
    parser.add_argument("--judge-concurrency", type=int, default=4, help="judge calls in flight")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model = build_tiny_model(REPO / "runs" / "models" / "tiny-vlm", kind="vlm", warm_start_steps=300)
        write_toy_videos(str(work / "videos"), args.videos, seed=21, spec=ToyVideoSpec(max_duration_s=15), progress=False)
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
        with LoopbackJudgeServer(FaultPlan(latency_ms=args.judge_latency_ms)) as slow, LoopbackJudgeServer(FaultPlan()) as instant:
            streaming = job_config(args, model, work / "videos", work / "streaming", slow.base_url)
            summary = run_pairs(streaming, progress=False)
            pipeline_s = summary.wall_s
            sample_s = run_pairs(job_config(args, model, work / "videos", work / "sample-only", instant.base_url), progress=False).wall_s
            judge_s = asyncio.run(judge_alone(streaming, judge_inputs(work / "streaming")))
        ray.shutdown()
    print(f"\n{args.videos} toy videos, n={args.n}, {args.max_new_tokens} new tokens/pass, mode=both (CD + retrospection), "
          f"judge latency {args.judge_latency_ms:g} ms x {args.judge_concurrency} in flight")  # fmt: skip
    print(f"streaming job (W)            {pipeline_s:7.1f} s   {60 * args.videos / pipeline_s:6.1f} videos/min")
    print(f"sampling alone (S)           {sample_s:7.1f} s")
    print(f"judging alone (J)            {judge_s:7.1f} s")
    print(f"S + J                        {sample_s + judge_s:7.1f} s   W / (S + J) = {pipeline_s / (sample_s + judge_s):.2f}")
    print(f"max(S, J)                    {max(sample_s, judge_s):7.1f} s   W / max(S, J) = {pipeline_s / max(sample_s, judge_s):.2f}")
    spans = {stage: round(seconds, 1) for stage, seconds in summary.stage_wall_s.items()}
    print(f"streaming job, wall time per stage (first start to last finish): {json.dumps(spans)}")
    print(f"streaming job, sampling and judging both running: {summary.sample_judge_overlap_s:.1f} s "
          f"({summary.sample_judge_overlap_s / spans['sample']:.0%} of the sampling stage)")  # fmt: skip
    print(f"busy time summed per video: {json.dumps({key: round(value, 1) for key, value in summary.busy_s.items()})}; "
          f"paired {summary.paired}, judge calls {summary.judge_calls}")  # fmt: skip


if __name__ == "__main__":
    main()
