"""Evaluation throughput: captions/s of the eval job's caption stage vs the pair job's sample stage, and
metric time per 1,000 captions.

Part 1 runs both stages in this process (no Ray: the stages are what the actor pools call) on the
same decoded toy videos and the same tiny random-weight Qwen2-VL on CPU, every caption greedy and
``--max-new-tokens`` long (random weights rarely stop early), so each caption is the same decoding
work: the eval job's ``CaptionStage`` (one caption per video) and the pair job's ``SampleStage`` in
plain mode without refinement (n candidates + one caption per clip per video). Time per caption,
median of ``--repeats`` interleaved rounds after a warm-up; the target is eval / pairs <= 1.

Part 2 scores 1,000 toy captions (each a ground-truth caption with one fact altered) against the
ground truth: the text metrics with and without METEOR (a Java process), and the fact metrics.

    .venv/bin/python bench/evaluate.py [--videos 6] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from synpo.evaluation.evalset import EvalVideo
from synpo.evaluation.report import fact_metrics
from synpo.evaluation.stages import CaptionStage
from synpo.evaluation.stages import DecodeStage as EvalDecodeStage
from synpo.evaluation.text_metrics import caption_metrics
from synpo.pairgen.config import CandidateSettings, ClipSettings
from synpo.pairgen.decode_stage import DecodeStage as PairDecodeStage
from synpo.pairgen.rows import unpack_array
from synpo.pairgen.sample_stage import SampleStage, SampleStageSettings
from synpo.sampling.engine import EngineSettings
from synpo.sampling.request import SamplingParams
from synpo.storage import Storage, StorageConfig
from synpo.toy.facts import fact_accuracy, scene_facts
from synpo.toy.model import build_tiny_model
from synpo.toy.pairs import ALTERATIONS, alter_scene
from synpo.toy.videos import ToyVideoSpec, write_toy_videos
from synpo.toy.world import describe_scene, make_scene
from synpo.video.sampler import VideoSamplingConfig

VIDEO = VideoSamplingConfig(num_frames=8, max_side=160)


def stage_throughput(work: Path, args: argparse.Namespace) -> None:
    model = build_tiny_model(work / "tiny-vlm", kind="vlm")
    write_toy_videos(str(work / "videos"), count=args.videos, seed=21, spec=ToyVideoSpec(min_duration_s=8, max_duration_s=16), progress=False)
    rows = [{"video_id": path.stem, "video": str(path), "prompt": "Describe this video."} for path in sorted((work / "videos").glob("*.mp4"))]
    engine = EngineSettings(kind="hf", model=str(model), device="cpu")
    eval_batch = EvalDecodeStage(VIDEO, StorageConfig())(pa.Table.from_pylist(rows))
    pair_batch = PairDecodeStage(VIDEO, Storage())(pa.Table.from_pylist(rows))
    clips = sum(len(unpack_array(frames)) for frames in pair_batch.column("clip_frames").to_pylist())
    caption = CaptionStage(engine, args.max_new_tokens, StorageConfig())
    sampling = SamplingParams(n=args.n, temperature=0.9, max_new_tokens=args.max_new_tokens)
    sample = SampleStage(
        SampleStageSettings(
            engine=engine, seed=0, clips=ClipSettings(refine=False, max_new_tokens=args.max_new_tokens),
            candidates=CandidateSettings(mode="plain", sampling=sampling),
        )
    )  # fmt: skip
    runs = {"eval caption stage": (lambda: caption(eval_batch), len(rows)), "pair sample stage": (lambda: sample(pair_batch), len(rows) * args.n + clips)}
    for run, _ in runs.values():
        run()  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, (run, captions) in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append((time.perf_counter() - start) / captions)
    per_caption = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"\nPart 1: tiny VLM on CPU, {len(rows)} videos, {VIDEO.num_frames} frames, {args.max_new_tokens} new tokens per caption")
    print(f"  eval: {len(rows)} captions per round; pairs: n={args.n} candidates + {clips} clip captions per round")
    for name, value in per_caption.items():
        print(f"  {name:<20} {value * 1e3:8.1f} ms/caption   {60 / value:8.1f} captions/min")
    print(f"  eval / pairs time per caption: {per_caption['eval caption stage'] / per_caption['pair sample stage']:.2f}x  (target <= 1)")


def metric_time(count: int) -> None:
    rng = random.Random(0)
    scenes = [make_scene(seed) for seed in range(count)]
    videos = [EvalVideo(f"v{scene.seed}", f"v{scene.seed}.mp4", "p", (describe_scene(scene),)) for scene in scenes]
    captions = {f"v{scene.seed}": describe_scene(alter_scene(scene, ALTERATIONS[scene.seed % 3], rng)) for scene in scenes}
    references = {video.video_id: list(video.references) for video in videos}
    timings = {}
    start = time.perf_counter()
    caption_metrics(captions, references, meteor=False)
    timings["CIDEr + BLEU-4 + ROUGE-L (PTB tokenizer)"] = time.perf_counter() - start
    start = time.perf_counter()
    caption_metrics(captions, references, meteor=True)
    timings["... + METEOR"] = time.perf_counter() - start
    start = time.perf_counter()
    fact_metrics([fact_accuracy(captions[f"v{scene.seed}"], scene_facts(scene)) for scene in scenes])
    timings["toy fact accuracy"] = time.perf_counter() - start
    print(f"\nPart 2: metric time for {count} toy captions (one fact altered each)")
    for name, value in timings.items():
        print(f"  {name:<42} {value:7.2f} s   ({value / count * 1000:.2f} s per 1,000 captions)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6, help="toy videos per round")
    parser.add_argument("--n", type=int, default=4, help="pair job candidates per video")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens per caption")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--captions", type=int, default=1000, help="captions scored in part 2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synpo-bench-eval-") as folder:
        stage_throughput(Path(folder), args)
    metric_time(args.captions)


if __name__ == "__main__":
    main()
