"""The vLLM half of ``bench/engines.py``; runs inside ``.venv-vllm`` and prints one JSON line.

    .venv-vllm/bin/python bench/engines_vllm.py --model DIR --n 10 --max-new-tokens 32 --prompts '["..."]'
    .venv-vllm/bin/python bench/engines_vllm.py --model VLM_DIR --n 8 --videos '["a.mp4", ...]' --modes plain,retrospective

With ``--videos`` the frames are sampled here (PyAV, ``--num-frames`` at ``--max-side``), as the pair job
samples them, and each video is one request; otherwise each text prompt is one request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.sampling.vllm_engine import VLLMEngine, VLLMSettings
from synpo.video import VideoSamplingConfig, sample_video


def build_requests(args: argparse.Namespace, mode: str) -> list[CaptionRequest]:
    params = SamplingParams(n=args.n, seed=0, max_new_tokens=args.max_new_tokens)
    if args.videos:
        config = VideoSamplingConfig(num_frames=args.num_frames, max_side=args.max_side)
        videos = [sample_video(path, path, config) for path in json.loads(args.videos)]
        return [CaptionRequest(f"v{index}", "Describe this video.", frames=video.frames, params=params, mode=mode) for index, video in enumerate(videos)]
    return [CaptionRequest(f"t{index}", prompt, params=params, mode=mode) for index, prompt in enumerate(json.loads(args.prompts))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="tiny model folder (text LM, or the VLM with --videos)")
    parser.add_argument("--n", type=int, default=10, help="candidates per request")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per candidate and pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode (median reported)")
    parser.add_argument("--prompts", help="JSON list of text prompts")
    parser.add_argument("--videos", help="JSON list of video files (one request each)")
    parser.add_argument("--num-frames", type=int, default=16, help="frames per video")
    parser.add_argument("--max-side", type=int, default=160, help="longer frame side in pixels")
    parser.add_argument("--modes", default="plain", help="comma-separated: plain, retrospective")
    args = parser.parse_args()
    if bool(args.prompts) == bool(args.videos):
        parser.error("give exactly one of --prompts and --videos")
    settings = VLLMSettings(dtype="float32", gpu_memory_utilization=0.1, max_model_len=2048, enable_chunked_prefill=False)
    engine = VLLMEngine(args.model, settings)
    rates: dict[str, float] = {}
    for mode in args.modes.split(","):
        requests = build_requests(args, mode)
        engine.generate(requests)  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            engine.generate(requests)
            runs.append(args.n * len(requests) / (time.perf_counter() - start))
        rates[mode] = statistics.median(runs)
    print("RESULT " + json.dumps({"candidates_per_s": rates}))


if __name__ == "__main__":
    main()
