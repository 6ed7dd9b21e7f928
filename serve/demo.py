"""The demo's last step: serve the promoted captioner with Ray Serve and caption a video over HTTP with `openai`.

    .venv/bin/python serve/demo.py --tracking-uri sqlite:///runs/demo/mlflow.db --name synpo-captioner-local \
        --fallback runs/demo/models/tiny-vlm --video runs/demo/heldout/toy-0099-00000.mp4

Serves ``models:/NAME@champion`` when the alias exists (the promotion moved it), else the ``--fallback``
model folder (and says so); starts a local Ray and Serve on a free loopback port, sends one chat
completion with the video as a data: URL, prints the reply, and shuts Serve down.
"""

from __future__ import annotations

import argparse
import base64
import socket
from pathlib import Path

import openai
import ray
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from ray import serve

from synpo.serving.deployment import build_app
from synpo.serving.settings import ServeSettings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="the MLflow registry the promotion used")
    parser.add_argument("--name", required=True, help="registered model name")
    parser.add_argument("--fallback", required=True, help="model folder to serve when nothing holds @champion")
    parser.add_argument("--video", required=True, help="the video to caption")
    args = parser.parse_args()
    try:
        version = MlflowClient(args.tracking_uri, registry_uri=args.tracking_uri).get_model_version_by_alias(args.name, "champion").version
        model = f"models:/{args.name}@champion"
        print(f"serving {model} (version {version})")
    except MlflowException:
        model = args.fallback
        print(f"nothing holds {args.name}@champion (the promotion refused): serving the base model {model} instead")
    port = free_port()
    settings = ServeSettings(
        model=model, name="synpo-captioner", tracking_uri=args.tracking_uri, port=port, alias_poll_s=0,
        video={"num_frames": 8, "max_side": 160} if model == args.fallback else None, engine={"kind": "hf", "device": "cpu"},
        scaling={"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.5},
    )  # fmt: skip
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(settings), name="demo", route_prefix="/", blocking=False)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local", max_retries=0, timeout=300)
        video_url = "data:video/mp4;base64," + base64.b64encode(Path(args.video).read_bytes()).decode()
        reply = client.chat.completions.create(
            model="synpo-captioner",
            max_tokens=96,
            messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": video_url}}, {"type": "text", "text": "Describe the video."}]}],
        )
        print(f"POST /v1/chat/completions ({reply.system_fingerprint}, {reply.usage.prompt_tokens}+{reply.usage.completion_tokens} tokens):")
        print(f"  {reply.choices[0].message.content}")
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
