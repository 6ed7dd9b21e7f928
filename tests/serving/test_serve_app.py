"""The captioning API for real: Ray Serve on the local Ray, a tiny captioner registered in a real MLflow registry,
requests through the ``openai`` package and plain HTTP.

The served caption is checked against the same model run here directly (same frames, prompt and greedy
settings): the API must return exactly what the model writes, with the usage it really had.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import os
import secrets
import threading

import httpx
import mlflow
import openai
import pytest
import serve_support as support
import torch
from serve_support import TOKEN_ENV, auth, data_url, running_app

from registry_support import register_versions
from synpo.serving.settings import ServeSettings
from synpo.training.config import LoraSettings
from synpo.training.model import add_lora, load_base

pytestmark = [pytest.mark.ray, pytest.mark.slow]
VIDEO = {"num_frames": 8, "max_side": 160}
PROMPT = "Describe the video."


@pytest.fixture(scope="module")
def registry(warm_vlm, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-registry")
    tracking = f"sqlite:///{root}/mlflow.db"
    adapters = []
    for index in range(3):  # 1 and 2: fresh (zero) LoRA, captions as the base; 3: random LoRA weights, other captions
        base, _ = load_base(warm_vlm)
        adapters.append(root / f"adapter-{index}")
        model = add_lora(base, LoraSettings(rank=4, alpha=8))
        if index == 2:
            torch.manual_seed(3)
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    torch.nn.init.normal_(parameter, std=0.5)
        model.save_pretrained(adapters[-1])
    register_versions(tracking, root / "artifacts", "cap", [
        {"adapter_dir": str(adapter), "base_model_dir": str(warm_vlm), "video": VIDEO, "prompt": PROMPT, "max_new_tokens": 24} for adapter in adapters
    ])  # fmt: skip
    mlflow.MlflowClient(tracking).set_registered_model_alias("cap", "champion", "1")
    mlflow.MlflowClient(tracking).set_registered_model_alias("cap", "challenger", "3")
    return tracking


class VideoHost(http.server.BaseHTTPRequestHandler):
    """A video host on loopback (trusted by the app under test): /clip.mp4, redirects to refused places, and
    /held.mp4, which answers only once ``release`` is set (``held`` tells the test the request has arrived)."""

    video = b""
    redirects = {"/to-metadata": "http://169.254.169.254/latest/meta-data/", "/to-loopback": "http://127.0.0.1:8265/clip.mp4"}
    held, release = threading.Event(), threading.Event()

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self.path == "/held.mp4":
            self.held.set()
            self.release.wait(timeout=120)
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(self.video)))
        self.end_headers()
        self.wfile.write(self.video)

    def log_message(self, *args) -> None:
        pass  # quiet test output


@pytest.fixture(scope="module")
def video_host(video_bytes):
    VideoHost.video = video_bytes
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), VideoHost)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def served(ray_cluster, registry, video_host):
    fields = {
        "model": "models:/cap@champion", "name": "cap", "tracking_uri": registry, "alias_poll_s": 0, "engine": {"kind": "hf", "device": "cpu"},
        "variants": {"cap@challenger": "models:/cap@challenger"},
        "sources": {"max_bytes": 2_000_000, "allowed_schemes": ["https", "http", "data"], "trusted_hosts": [video_host]}, "limits": {"max_duration_s": 60, "max_new_tokens": 64},
        "scaling": {"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.5},
    }  # fmt: skip
    with running_app(fields) as (base, settings):
        yield base, settings


@pytest.fixture(scope="module")
def video_bytes(toy_video_dir) -> bytes:
    return sorted(toy_video_dir.glob("*.mp4"))[0].read_bytes()


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=os.environ[TOKEN_ENV], max_retries=0, timeout=120)


def local_caption(registry: str, data: bytes, max_new_tokens: int, version: str = "1"):
    """What the registered version writes for ``data``, run here without Serve."""
    from synpo.registry.resolve import resolve_captioner
    from synpo.sampling.hf_engine import HFEngine
    from synpo.sampling.request import SamplingParams
    from synpo.video.sampler import VideoSamplingConfig, sample_video

    captioner = resolve_captioner(f"models:/cap/{version}", registry)
    engine = HFEngine(captioner.base_model, device="cpu", adapter=captioner.adapter)
    frames = sample_video(data, "video", VideoSamplingConfig(**VIDEO)).frames
    return engine.caption(frames, PROMPT, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens))[0]


def test_the_openai_client_gets_exactly_the_models_caption_with_its_usage(served, registry, video_bytes):
    base, _ = served
    reply = client(base).chat.completions.create(
        model="cap",
        max_tokens=20,
        messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": data_url(video_bytes)}}, {"type": "text", "text": PROMPT}]}],
    )
    expected = local_caption(registry, video_bytes, 20)
    assert reply.choices[0].message.content == expected.text and reply.choices[0].finish_reason == expected.finish_reason
    assert reply.usage.completion_tokens == len(expected.token_ids) and reply.usage.prompt_tokens == expected.prompt_tokens > 0
    assert reply.model == "cap" and reply.system_fingerprint == "cap-v1"


def test_captions_endpoint_takes_an_upload_or_a_url_and_reports_timings(served, video_bytes):
    base, _ = served
    upload = httpx.post(f"{base}/v1/captions", headers=auth(), files={"video": ("clip.mp4", video_bytes, "video/mp4")}, data={"max_new_tokens": "12"}, timeout=120)
    assert upload.status_code == 200, upload.text
    body = upload.json()
    assert body["caption"] and body["model"] == "cap" and body["version"] == "1" and body["mode"] == "plain"
    assert set(body["timings"]) == {"fetch_s", "decode_s", "generate_s"} and body["timings"]["generate_s"] > 0
    by_url = httpx.post(f"{base}/v1/captions", headers=auth(), json={"video_url": data_url(video_bytes), "max_new_tokens": 12}, timeout=120)
    assert by_url.status_code == 200 and by_url.json()["caption"] == body["caption"]  # greedy: the same caption either way
    models = httpx.get(f"{base}/v1/models", headers=auth()).json()["data"]
    assert (models[0]["id"], models[0]["version"], models[0]["alias"]) == ("cap", "1", "champion")
    assert [entry["id"] for entry in models[1:]] == ["cap@challenger"]
    assert httpx.get(f"{base}/health").status_code == 200 and httpx.get(f"{base}/ready").json()["version"] == "1"


BAD_REQUESTS = [
    # (what, method kwargs, status, words in the message)
    ("empty body", {"content": b"", "headers": {"Content-Type": "application/json"}}, 400, "Invalid JSON"),
    ("no token", {"json": {"model": "cap"}, "headers": {"Authorization": ""}}, 401, "API token"),
    ("wrong token", {"json": {"model": "cap"}, "headers": {"Authorization": "Bearer nope"}}, 401, "API token"),
    ("unknown model", {"json": {"model": "other", "messages": [{"role": "user", "content": "hi"}]}}, 404, "not served here"),
    ("no video", {"json": {"model": "cap", "messages": [{"role": "user", "content": "hi"}]}}, 400, "exactly one video_url"),
    ("streaming", {"json": {"model": "cap", "stream": True, "messages": [{"role": "user", "content": "hi"}]}}, 400, "stream: not supported"),
    ("greedy n=2", {"json": {"model": "cap", "n": 2, "messages": [{"role": "user", "content": "hi"}]}}, 400, "identical captions"),
    ("file://", {"video": "file:///etc/passwd"}, 400, "scheme"),
    ("metadata service", {"video": "http://169.254.169.254/latest/meta-data/"}, 403, "link-local"),
    ("loopback", {"video": "http://127.0.0.1:8265/"}, 403, "loopback"),
    ("hex loopback", {"video": "http://0x7f000001/clip.mp4"}, 403, "loopback"),
    ("too many tokens", {"json": {"model": "cap", "max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]}}, 400, "over this server's limit"),
]


def chat_with_video(url: str) -> dict:
    return support.chat_with_video(url, model="cap")


@pytest.mark.parametrize(("what", "kwargs", "status", "words"), BAD_REQUESTS, ids=[row[0] for row in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_in_openais_error_format(served, what, kwargs, status, words):
    base, _ = served
    kwargs = dict(kwargs)
    headers = {**auth(), **kwargs.pop("headers", {})}
    if "video" in kwargs:
        kwargs["json"] = chat_with_video(kwargs.pop("video"))
    response = httpx.post(f"{base}/v1/chat/completions", headers=headers, timeout=60, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert words in error["message"] and error["type"]


def test_a_video_by_http_url_is_fetched_and_a_redirect_to_a_refused_address_is_not_followed(served, video_host, video_bytes):
    base, _ = served
    fetched = httpx.post(f"{base}/v1/captions", headers=auth(), json={"video_url": f"http://{video_host}/clip.mp4", "max_new_tokens": 6}, timeout=120)
    uploaded = httpx.post(f"{base}/v1/captions", headers=auth(), files={"video": ("clip.mp4", video_bytes, "video/mp4")}, data={"max_new_tokens": "6"}, timeout=120)
    assert fetched.status_code == 200 and fetched.json()["caption"] == uploaded.json()["caption"]
    for path, words in (("/to-metadata", "link-local"), ("/to-loopback", "loopback")):
        refused = httpx.post(f"{base}/v1/captions", headers=auth(), json={"video_url": f"http://{video_host}{path}"}, timeout=60)
        assert refused.status_code == 403 and words in refused.json()["error"]["message"], refused.text


def test_bad_videos_get_a_4xx_naming_the_problem(served, video_bytes):
    base, _ = served
    cases = [
        ({"files": {"video": ("notes.txt", b"hello, not a video at all\n" * 4, "text/plain")}}, 415, "not a video"),
        ({"files": {"video": ("cut.mp4", video_bytes[: len(video_bytes) // 3], "video/mp4")}}, 422, "not a decodable video"),
        ({"files": {"video": ("big.mp4", video_bytes + b"\0" * 2_100_000, "video/mp4")}}, 413, "over the limit"),
        ({"json": {"video_url": "http://127.0.0.1/clip.mp4"}}, 403, "loopback"),
        ({"json": {"video_url": "ftp://example.com/clip.mp4"}}, 400, "scheme"),
        ({"json": {"prompt": "no video"}}, 400, "either as video_url or as an uploaded file"),
        ({"content": b"video=1", "headers": {"Content-Type": "text/plain"}}, 415, "multipart/form-data"),
    ]
    for kwargs, status, words in cases:
        headers = {**auth(), **kwargs.pop("headers", {})}
        response = httpx.post(f"{base}/v1/captions", headers=headers, timeout=60, **kwargs)
        assert response.status_code == status and words in response.json()["error"]["message"], response.text


def test_an_alias_move_is_served_after_reload_and_an_inflight_request_finishes_on_the_old_version(served, registry, video_host, video_bytes):
    base, _ = served
    registry_client = mlflow.MlflowClient(registry)
    assert httpx.post(f"{base}/v1/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    unchanged = httpx.post(f"{base}/v1/admin/reload", headers=auth(), timeout=120).json()
    assert unchanged["reloaded"] is False and unchanged["version"] == "1"

    # The request in flight is held while it fetches its video, so the alias moves while it is certainly under way.
    held_request = chat_with_video(f"http://{video_host}/held.mp4") | {"max_tokens": 8}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{base}/v1/chat/completions", headers=auth(), json=held_request, timeout=180)
        assert VideoHost.held.wait(timeout=120)
        registry_client.set_registered_model_alias("cap", "champion", "2")
        reloaded = httpx.post(f"{base}/v1/admin/reload", headers=auth(), timeout=180).json()
        VideoHost.release.set()
        old = in_flight.result()
    assert reloaded["reloaded"] is True and reloaded["previous_version"] == "1" and reloaded["version"] == "2"
    assert old.status_code == 200 and old.json()["system_fingerprint"] == "cap-v1"
    after = httpx.post(f"{base}/v1/chat/completions", headers=auth(), json=chat_with_video(data_url(video_bytes)) | {"max_tokens": 4}, timeout=120)
    assert after.json()["system_fingerprint"] == "cap-v2"
    registry_client.set_registered_model_alias("cap", "champion", "1")  # back, for the other tests of the module
    assert httpx.post(f"{base}/v1/admin/reload", headers=auth(), timeout=120).json()["version"] == "1"


def test_settings_refuse_a_public_bind_without_a_token():
    from synpo.config.loader import ConfigError

    settings = ServeSettings(host="0.0.0.0", auth={"token_env": "SYNPO_NO_SUCH_TOKEN_" + secrets.token_hex(4)})
    with pytest.raises(ConfigError, match="reachable from other machines"):
        settings.require_token(None)
    ServeSettings(host="127.0.0.1").require_token(None)


def test_a_rollback_tells_the_deployment_which_then_serves_the_previous_version(served, registry):
    from synpo.promotion.config import PromoteConfig
    from synpo.promotion.job import rollback
    from synpo.registry.promotion import Decision, move_alias

    base, _ = served
    move_alias(mlflow.MlflowClient(registry), "cap", "2", "1", Decision(True, "test", []), "champion")  # 1 becomes 'previous'
    config = PromoteConfig.model_validate(
        {"model_name": "cap", "eval": {"mlflow": {"tracking_uri": registry}}, "serve": {"urls": [base, "http://127.0.0.1:9"], "token_env": TOKEN_ENV}}
    )
    assert httpx.post(f"{base}/v1/admin/reload", headers=auth(), timeout=120).json()["version"] == "2"
    version, reloads = rollback(config)
    assert version == "1" and reloads[0] == f"serve {base}: v2 -> v1"
    assert reloads[1].startswith("serve http://127.0.0.1:9: not reached (ConnectError") and "next poll" in reloads[1]
    assert httpx.get(f"{base}/v1/models", headers=auth()).json()["data"][0]["version"] == "1"


def test_a_variant_adapter_is_served_beside_the_main_model_on_the_same_replica(served, registry, video_bytes):
    base, _ = served
    ask = client(base)
    content = [{"type": "video_url", "video_url": {"url": data_url(video_bytes)}}, {"type": "text", "text": PROMPT}]
    expected = {"cap": local_caption(registry, video_bytes, 12, "1").text, "cap@challenger": local_caption(registry, video_bytes, 12, "3").text}
    assert expected["cap"] != expected["cap@challenger"]  # the variant really is another model
    for name in ("cap@challenger", "cap", "cap@challenger", "cap"):  # switching adapters back and forth
        reply = ask.chat.completions.create(model=name, max_tokens=12, messages=[{"role": "user", "content": content}])
        assert reply.choices[0].message.content == expected[name], name
        assert reply.system_fingerprint == ("cap@challenger-v3" if name == "cap@challenger" else "cap-v1")
    listed = {entry["id"]: entry for entry in httpx.get(f"{base}/v1/models", headers=auth()).json()["data"]}
    assert listed["cap@challenger"]["variant_of"] == "cap" and listed["cap@challenger"]["uri"] == "models:/cap@challenger"
