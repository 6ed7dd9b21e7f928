"""Caption-engine throughput: plain vs CD vs retrospective vs both (HF engine, tiny VLM), and HF vs vLLM.

Part 1 runs the four modes side by side on the same videos with the tiny random-weight Qwen2-VL
(every candidate runs to ``max_new_tokens``, so each mode does the same number of decoding steps
per pass) and prints candidates/s and the cost ratio against plain next to the paper's (CD
+50-75%, retrospection about 2x).

Part 2 compares the HF engine with the vLLM engine on the tiny text model (plain mode, same
prompts, n, max_new_tokens). Part 3 does the same on video: the tiny Qwen2-VL on the same toy
videos and frames, n = 8 (``--video-n``), plain and retrospective. vLLM runs in its own venv
(``.venv-vllm``, ``make vllm-venv``) as a subprocess of this script (``bench/engines_vllm.py``);
parts 2 and 3 are skipped with a note if that venv is missing.

    .venv/bin/python bench/engines.py [--videos 4] [--n 10] [--video-n 8] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from synpo.sampling.hf_engine import HFEngine
from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.toy.model import build_tiny_model
from synpo.toy.videos import write_toy_videos
from synpo.video import VideoSamplingConfig, sample_video

REPO = Path(__file__).resolve().parents[1]
PAPER = {"contrastive": "1.50-1.75x", "retrospective": "~2x", "both": "~3-3.5x (both costs)"}
TEXT_PROMPTS = [f"Describe a {colour} {shape} that moves {way}." for colour in ("red", "blue") for shape in ("circle", "square") for way in ("left", "right")]


def time_candidates(runs: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median candidates/s of each ``(run, candidates)`` variant; rounds interleave the variants so drift
    in machine load hits them all alike. One warm-up run each first."""
    for run, _ in runs.values():
        run()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (run, candidates) in runs.items():
            start = time.perf_counter()
            run()
            rates[name].append(candidates / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def modes_part(work: Path, args: argparse.Namespace) -> None:
    model = build_tiny_model(work / "tiny-vlm", kind="vlm")
    write_toy_videos(str(work / "videos"), count=args.videos, seed=5, progress=False)
    config = VideoSamplingConfig(num_frames=16, max_side=160)
    sampled = [sample_video(path, str(path), config) for path in sorted((work / "videos").glob("*.mp4"))]
    engine = HFEngine(model, device="cpu")
    params = SamplingParams(n=args.n, seed=0, max_new_tokens=args.max_new_tokens)
    runs = {}
    for mode in ("plain", "contrastive", "retrospective", "both"):
        requests = [
            CaptionRequest(f"v{index}", "Describe this video.", frames=video.frames, sparse_frames=video.sparse_frames, params=params, mode=mode)
            for index, video in enumerate(sampled)
        ]
        runs[mode] = (lambda requests=requests: engine.generate(requests), args.n * len(requests))
    rates = time_candidates(runs, args.repeats)
    print(f"\nHF engine, tiny VLM, {args.videos} videos x n={args.n}, 16 frames (sparse 6), {args.max_new_tokens} new tokens per pass, "
          f"{torch.get_num_threads()} threads")
    print(f"{'mode':<15}{'candidates/s':>14}{'cost vs plain':>15}{'paper':>22}")
    for mode, rate in rates.items():
        print(f"{mode:<15}{rate:>14.2f}{rates['plain'] / rate:>14.2f}x{PAPER.get(mode, '1x'):>22}")


def text_part(work: Path, args: argparse.Namespace) -> None:
    model = build_tiny_model(work / "tiny-text", kind="text")
    params = SamplingParams(n=args.n, seed=0, max_new_tokens=args.max_new_tokens)
    requests = [CaptionRequest(f"t{index}", prompt, params=params) for index, prompt in enumerate(TEXT_PROMPTS)]
    engine = HFEngine(model, device="cpu")
    hf_rate = time_candidates({"hf": (lambda: engine.generate(requests), args.n * len(requests))}, args.repeats)["hf"]
    print(f"\nHF vs vLLM, tiny text model, {len(requests)} prompts x n={args.n}, {args.max_new_tokens} new tokens (plain mode)")
    print(f"hf    {hf_rate:10.2f} candidates/s")
    vllm_rates = vllm_candidates_per_s(model, args, args.n, ["--prompts", json.dumps(TEXT_PROMPTS)], "plain")
    if vllm_rates is not None:
        print(f"vllm  {vllm_rates['plain']:10.2f} candidates/s   vllm / hf = {vllm_rates['plain'] / hf_rate:.2f}x")


def vllm_candidates_per_s(model: Path, args: argparse.Namespace, n: int, inputs: list[str], modes: str) -> dict[str, float] | None:
    """Candidates/s per mode of the vLLM engine, measured by ``bench/engines_vllm.py`` in ``.venv-vllm`` (None: no venv)."""
    vllm_python = REPO / ".venv-vllm" / "bin" / "python"
    if not vllm_python.exists():
        print("vllm  skipped: .venv-vllm is missing (make vllm-venv)")
        return None
    command = [str(vllm_python), str(REPO / "bench" / "engines_vllm.py"), "--model", str(model), "--n", str(n),
               "--max-new-tokens", str(args.max_new_tokens), "--repeats", str(args.repeats), "--modes", modes, *inputs]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"vLLM benchmark failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(result.removeprefix("RESULT "))["candidates_per_s"]


def video_part(work: Path, args: argparse.Namespace) -> None:
    """HF vs vLLM on video: the tiny VLM, the same toy videos and frames, plain and retrospective."""
    model = build_tiny_model(work / "tiny-vlm", kind="vlm")
    paths = [str(path) for path in sorted((work / "videos").glob("*.mp4"))]
    config = VideoSamplingConfig(num_frames=16, max_side=160)
    sampled = [sample_video(path, path, config) for path in paths]
    engine = HFEngine(model, device="cpu")
    params = SamplingParams(n=args.video_n, seed=0, max_new_tokens=args.max_new_tokens)
    modes = ("plain", "retrospective")
    runs = {}
    for mode in modes:
        requests = [CaptionRequest(f"v{index}", "Describe this video.", frames=video.frames, params=params, mode=mode) for index, video in enumerate(sampled)]
        runs[mode] = (lambda requests=requests: engine.generate(requests), args.video_n * len(requests))
    hf_rates = time_candidates(runs, args.repeats)
    vllm_rates = vllm_candidates_per_s(model, args, args.video_n, ["--videos", json.dumps(paths), "--num-frames", "16", "--max-side", "160"], ",".join(modes))
    print(f"\nHF vs vLLM on video, tiny VLM, {len(paths)} videos x n={args.video_n}, 16 frames, {args.max_new_tokens} new tokens per pass")
    print(f"{'mode':<15}{'hf cand/s':>11}{'vllm cand/s':>13}{'vllm / hf':>11}")
    for mode in modes:
        vllm_rate = vllm_rates[mode] if vllm_rates else float("nan")
        print(f"{mode:<15}{hf_rates[mode]:>11.2f}{vllm_rate:>13.2f}{vllm_rate / hf_rates[mode]:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4, help="toy videos per timed run")
    parser.add_argument("--n", type=int, default=10, help="candidates per request (parts 1 and 2)")
    parser.add_argument("--video-n", type=int, default=8, help="candidates per video in part 3 (HF vs vLLM on video)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--skip-vllm", action="store_true", help="only the HF modes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        modes_part(Path(folder), args)
        if not args.skip_vllm:
            text_part(Path(folder), args)
            video_part(Path(folder), args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
