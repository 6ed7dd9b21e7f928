"""The vLLM half of ``bench/engines.py``; runs inside ``.venv-vllm`` and prints one JSON line.

    .venv-vllm/bin/python bench/engines_vllm.py --model DIR --n 10 --max-new-tokens 32 --prompts '["..."]'
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from synpo.sampling.request import CaptionRequest, SamplingParams
from synpo.sampling.vllm_engine import VLLMEngine, VLLMSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="tiny text model folder")
    parser.add_argument("--n", type=int, default=10, help="candidates per request")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens generated per candidate")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--prompts", required=True, help="JSON list of prompts")
    args = parser.parse_args()
    settings = VLLMSettings(dtype="float32", gpu_memory_utilization=0.1, max_model_len=1024, enable_chunked_prefill=False)
    engine = VLLMEngine(args.model, settings)
    params = SamplingParams(n=args.n, seed=0, max_new_tokens=args.max_new_tokens)
    requests = [CaptionRequest(f"t{index}", prompt, params=params) for index, prompt in enumerate(json.loads(args.prompts))]
    engine.generate(requests)  # warm-up
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        engine.generate(requests)
        rates.append(args.n * len(requests) / (time.perf_counter() - start))
    print("RESULT " + json.dumps({"candidates_per_s": statistics.median(rates)}))


if __name__ == "__main__":
    main()
