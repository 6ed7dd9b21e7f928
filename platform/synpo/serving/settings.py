"""The serving app's one typed settings model: ``serve/config.yaml``'s application ``args`` and ``synpo serve`` alike.

    serve run serve/config.yaml                     # Serve's own config; its args are a ServeSettings
    synpo serve --model models:/NAME@champion ...   # the same settings from flags and key=value

Every field is documented (``synpo config show serve``); a bad value is refused when the app is
built, naming the field.
"""

from __future__ import annotations

import ipaddress

import pydantic

from synpo.config.base import StrictModel
from synpo.config.loader import ConfigError
from synpo.sampling.engine import EngineSettings
from synpo.serving.source_settings import VideoSourceSettings
from synpo.video.sampler import VideoSamplingConfig

LOOPBACK_NAMES = ("localhost",)


class RequestLimits(StrictModel):
    """What one request may ask for; anything beyond is answered 4xx before any decoding or generation."""

    max_duration_s: float = pydantic.Field(default=600.0, gt=0, description="longest video accepted, seconds")
    max_side: int = pydantic.Field(default=4096, ge=16, description="largest width or height of a video accepted, pixels")
    max_frames: int = pydantic.Field(default=36_000, ge=1, description="most frames a video may have (its container's count)")
    max_new_tokens: int = pydantic.Field(default=1024, ge=1, le=8192, description="largest max_tokens / max_new_tokens a request may ask for")
    max_n: int = pydantic.Field(default=8, ge=1, le=64, description="most captions (n) one request may ask for")
    max_prompt_chars: int = pydantic.Field(default=4000, ge=1, description="longest prompt accepted, characters")


class BatchSettings(StrictModel):
    """Dynamic batching (``@serve.batch``): concurrent greedy requests share one generate call."""

    enabled: bool = pydantic.Field(default=True, description="batch concurrent requests (off: one generate call per request)")
    max_batch_size: int = pydantic.Field(default=8, ge=1, le=256, description="most requests in one generate call")
    batch_wait_timeout_s: float = pydantic.Field(default=0.02, ge=0, description="how long the first request of a batch waits for others")


class ScalingSettings(StrictModel):
    """Replicas and their queues (Ray Serve's autoscaling_config, max_ongoing_requests, max_queued_requests)."""

    min_replicas: int = pydantic.Field(default=1, ge=0, description="fewest replicas (0: scale to zero when idle)")
    max_replicas: int = pydantic.Field(default=2, ge=1, description="most replicas")
    target_ongoing_requests: float = pydantic.Field(default=2.0, gt=0, description="requests per replica the autoscaler aims for")
    upscale_delay_s: float = pydantic.Field(default=10.0, ge=0, description="how long load must stay high before adding replicas")
    downscale_delay_s: float = pydantic.Field(default=60.0, ge=0, description="how long load must stay low before removing replicas")
    max_ongoing_requests: int = pydantic.Field(default=8, ge=1, description="requests one replica works on at once")
    max_queued_requests: int = pydantic.Field(default=32, ge=0, description="requests waiting for a replica; beyond: 503 with Retry-After")
    retry_after_s: float = pydantic.Field(default=2.0, gt=0, description="the Retry-After of a 503 sent when the queue is full, seconds")
    look_back_period_s: float = pydantic.Field(default=30.0, gt=0, description="window the autoscaler averages load over, seconds")
    metrics_interval_s: float | None = pydantic.Field(
        default=None, gt=0, description="how often replicas report load to the autoscaler (None: Serve's 10 s; short only in tests)"
    )
    num_cpus: float = pydantic.Field(default=1.0, ge=0, description="CPUs per replica")
    num_gpus: float = pydantic.Field(default=0.0, ge=0, description="GPUs per replica")
    python: str | None = pydantic.Field(
        default=None,
        min_length=1,
        description="the Python interpreter the replicas run in (Ray's runtime_env py_executable): /opt/vllm/bin/python on the "
        "cluster image for engine.kind=vllm (vLLM has a venv of its own); None = Serve's own",
    )

    def deployment_options(self) -> dict:
        """These settings as ``@serve.deployment`` options."""
        autoscaling = {
            "min_replicas": self.min_replicas, "max_replicas": self.max_replicas, "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s, "downscale_delay_s": self.downscale_delay_s, "look_back_period_s": self.look_back_period_s,
        }  # fmt: skip
        if self.metrics_interval_s is not None:
            autoscaling["metrics_interval_s"] = self.metrics_interval_s
        return {
            "autoscaling_config": autoscaling,
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": self.max_queued_requests,
            "backpressure_config": {"status_code": 503, "retry_after_s": self.retry_after_s},
            "ray_actor_options": {
                "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
                **({"runtime_env": {"py_executable": self.python}} if self.python else {}),
            },
        }  # fmt: skip

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> ScalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not exceed max_replicas ({self.max_replicas})")
        return self


class AuthSettings(StrictModel):
    """Bearer-token auth. The token is read from the environment variable ``token_env`` names, never from config."""

    token_env: str = pydantic.Field(default="SYNPO_SERVE_TOKEN", min_length=1, description="NAME of the environment variable holding the API token")


class ServeSettings(StrictModel):
    """The captioner behind the OpenAI-compatible API: which model, how requests are checked, batched and scaled."""

    model: str = pydantic.Field(
        default="toy://tiny-vlm",
        description="models:/NAME@ALIAS (follows the alias), models:/NAME/VERSION, toy://tiny-vlm, or a model folder / s3:// prefix",
    )
    adapter: str | None = pydantic.Field(default=None, description="LoRA adapter folder for a model given as a folder (registry versions bring theirs)")
    name: str = pydantic.Field(default="synpo-captioner", min_length=1, description="the model name clients send in the 'model' field")
    variants: dict[str, str] = pydantic.Field(
        default_factory=dict,
        description="more captioners on the same replicas, by the name clients send as 'model' (e.g. synpo-captioner@challenger) -> "
        "a registry URI trained from the same base; their LoRA adapters load on first use beside the main one (Serve model "
        "multiplexing: send the header serve_multiplexed_model_id=<name> to reach a replica that has it loaded)",
    )
    tracking_uri: str = pydantic.Field(default="sqlite:///runs/mlflow.db", description="MLflow tracking/registry URI for models:/ URIs")
    alias_poll_s: float = pydantic.Field(
        default=30.0, ge=0, description="how often a replica serving models:/NAME@ALIAS checks whether the alias moved (0 = never)"
    )
    engine: EngineSettings = pydantic.Field(default_factory=EngineSettings, description="engine kind and device (its model is `model`)")
    video: VideoSamplingConfig | None = pydantic.Field(default=None, description="frames per video (None: the registry version's, else the defaults)")
    prompt: str | None = pydantic.Field(default=None, description="instruction when a request has none (None: the version's, else the standard one)")
    max_new_tokens: int | None = pydantic.Field(default=None, ge=1, le=8192, description="caption length when a request sets none (None: the version's, else 256)")
    host: str = pydantic.Field(default="127.0.0.1", description="address the HTTP proxy binds to (beyond loopback, a token is required)")
    port: int = pydantic.Field(default=8000, ge=1, le=65535, description="HTTP port")
    request_timeout_s: float = pydantic.Field(default=120.0, gt=0, description="longest a request may take end to end (then 504/408 from Serve)")
    route_prefix: str = pydantic.Field(default="/", pattern=r"^/", description="URL prefix of the API")
    auth: AuthSettings = pydantic.Field(default_factory=AuthSettings, description="bearer-token auth")
    limits: RequestLimits = pydantic.Field(default_factory=RequestLimits, description="caps on what a request may ask for")
    sources: VideoSourceSettings = pydantic.Field(default_factory=VideoSourceSettings, description="where video_url may point, and size/time caps")
    batching: BatchSettings = pydantic.Field(default_factory=BatchSettings, description="dynamic batching")
    scaling: ScalingSettings = pydantic.Field(default_factory=ScalingSettings, description="replicas, autoscaling and queues")

    @property
    def binds_beyond_loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name: assume reachable from elsewhere
            return True

    def require_token(self, token: str | None) -> None:
        """Refuse to serve beyond loopback without a token."""
        if token is None and self.binds_beyond_loopback:
            raise ConfigError(
                f"host={self.host!r} is reachable from other machines, so the API needs a token: set the environment variable "
                f"{self.auth.token_env} (auth.token_env names it), or bind to 127.0.0.1"
            )
