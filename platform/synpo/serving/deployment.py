"""The Ray Serve deployment: one replica = the API (FastAPI ingress) + the captioner it serves.

    app = build_app(ServeSettings(model="models:/synpo-captioner@champion"))   # serve/app.py does this for `serve run`

Per request: auth -> parse -> fetch the video (:mod:`synpo.serving.video_source`, async) -> check and
decode it (a worker thread) -> caption. With ``engine.kind=vllm`` each request is awaited on vLLM's
``AsyncLLM`` (continuous batching; LoRA variants as per-request LoRA requests). With the HF engine,
captioning goes through one ``@serve.batch`` method, so
concurrent requests share engine calls (the HF engine runs the greedy passes of different videos in
one ``generate``) and the engine only ever runs one call at a time (in a worker thread: the event loop
stays free for health checks and new requests). ``batching.enabled=false`` makes every batch one request.

**Model updates.** A replica serving ``models:/NAME@ALIAS`` checks the alias every ``alias_poll_s``;
``POST /v1/admin/reload`` makes the replica that receives it check at once. When the alias moved,
the new version's adapter joins the engine (same base: no second copy of the weights; another base
loads anew beside the old) and is swapped in; a request holds the model it started with, so requests
in flight finish on the old version and none is dropped. Other replicas follow at their next poll.

**Overload.** ``scaling.max_ongoing_requests`` per replica and ``scaling.max_queued_requests`` waiting:
beyond that Serve answers 503 with ``Retry-After``; ``request_timeout_s`` bounds every request (408).

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time, and
through ``@serve.ingress`` a string annotation such as ``"Request"`` is no longer resolved (the request
then looks like a missing query parameter, 422). For the same reason (``@serve.ingress`` captures the
class as it is defined) every helper the routes call is defined above the class.
"""

import asyncio
import hmac
import logging
import os
import time
from dataclasses import dataclass

import pydantic
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mlflow.exceptions import MlflowException
from ray import serve

from synpo.errors import UserError
from synpo.sampling.request import Candidate, SamplingParams
from synpo.serving import openai_api
from synpo.serving.captioner import (
    ApiError,
    CaptionJob,
    LoadedCaptioner,
    alias_version,
    attach_variant,
    decode_checked,
    detach_variant,
    load_captioner,
    reload_captioner,
)
from synpo.serving.settings import ServeSettings
from synpo.serving.uploads import CaptionForm, read_caption_request
from synpo.serving.video_source import VideoSourceError, check_upload, fetch_video
from synpo.storage import Storage

logger = logging.getLogger("ray.serve")
MAX_VARIANTS_PER_REPLICA = 3  # variants (adapters) a replica keeps loaded; the least recently used is unloaded
api = FastAPI(title="synpo captioner", description="Video captions from a SynPO-tuned VLM; OpenAI-compatible chat completions.")


@api.exception_handler(ApiError)
async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return JSONResponse(openai_api.error_body(str(error), error.error_type, error.param), status_code=error.status)


@api.exception_handler(VideoSourceError)
async def _source_error(request: Request, error: VideoSourceError) -> JSONResponse:
    return JSONResponse(openai_api.error_body(str(error), "invalid_request_error", "video_url"), status_code=error.status)


async def _parsed(request: Request, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    try:
        return model.model_validate_json(await request.body())
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ApiError(400, f"{where}: {first['msg']} ({error.error_count()} problem(s) in the request body)", param=where) from None


def _check_prompt(prompt: str | None, limit: int) -> None:
    if prompt is not None and len(prompt) > limit:
        raise ApiError(400, f"the prompt has {len(prompt)} characters, over the limit of {limit}", param="prompt")


def _fingerprint(model: LoadedCaptioner) -> str:
    return f"{model.name}-v{model.version}" if model.version else model.name


class Variant:
    """A variant as Serve's multiplexer holds it: its adapter leaves the shared engine when Serve evicts it."""

    def __init__(self, model: LoadedCaptioner) -> None:
        self.model, self._attached = model, True

    def __del__(self) -> None:  # Serve calls it (in a worker thread) on eviction; the flag makes the GC's call a no-op
        if self._attached:
            self._attached = False
            detach_variant(self.model)


@dataclass
class Timings:
    fetch_s: float = 0.0
    decode_s: float = 0.0
    generate_s: float = 0.0


@serve.deployment(name="Captioner", health_check_period_s=10)
@serve.ingress(api)
class CaptionServer:
    def __init__(self, settings: dict) -> None:
        self.settings = ServeSettings.model_validate(settings)
        self._token = os.environ.get(self.settings.auth.token_env) or None
        self.settings.require_token(self._token)
        self.storage = Storage()
        self.model: LoadedCaptioner = load_captioner(self.settings)
        batching = self.settings.batching
        self.caption_batch.set_max_batch_size(batching.max_batch_size if batching.enabled else 1)
        self.caption_batch.set_batch_wait_timeout_s(batching.batch_wait_timeout_s if batching.enabled else 0.0)
        self._reload_lock = asyncio.Lock()
        self._poller = None
        if self.model.alias is not None and self.settings.alias_poll_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._follow_alias())
        logger.info("serving %s as %r (version %s)", self.model.uri, self.model.name, self.model.version)

    # --- model updates --------------------------------------------------------------------------

    async def _follow_alias(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alias_poll_s)
            try:
                await self.reload_if_moved()
            except (MlflowException, UserError, OSError) as error:  # the registry is down: keep serving what we have
                logger.warning("could not check %s for a new version (still serving v%s): %s", self.model.uri, self.model.version, error)

    async def reload_if_moved(self) -> dict:
        """Load the version the alias names now, if it is not the one served; returns what is served after."""
        async with self._reload_lock:
            before = self.model
            current = await asyncio.to_thread(alias_version, self.settings)
            if current is not None and current != before.version:
                self.model = await asyncio.to_thread(reload_captioner, before, self.settings)  # in-flight requests keep `before`
                logger.info("%s moved: v%s -> v%s", self.model.uri, before.version, self.model.version)
            return {"reloaded": self.model is not before, "previous_version": before.version, **self.model.describe()}

    @serve.multiplexed(max_num_models_per_replica=MAX_VARIANTS_PER_REPLICA)
    async def variant(self, name: str) -> Variant:
        """``settings.variants[name]`` as another adapter on this replica's engine (Serve keeps the most recent few)."""
        return Variant(await asyncio.to_thread(attach_variant, self.model, name, self.settings.variants[name], self.settings.tracking_uri))

    def check_health(self) -> None:
        if self.model is None:
            raise RuntimeError("no model loaded")

    # --- captioning -----------------------------------------------------------------------------

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def caption_batch(self, work: list[tuple[LoadedCaptioner, CaptionJob]]) -> list[list[Candidate] | Exception]:
        """One engine call per model among the batch's requests (two only while a new version swaps in)."""
        results: list[list[Candidate] | Exception] = [None] * len(work)  # type: ignore[list-item]
        for model in {id(model): model for model, _ in work}.values():
            indices = [index for index, (owner, _) in enumerate(work) if owner is model]
            candidates = await asyncio.to_thread(model.caption, [work[index][1] for index in indices])
            for index, found in zip(indices, candidates, strict=True):
                results[index] = found
        return results

    async def _caption(self, model: LoadedCaptioner, video: str | bytes, prompt: str | None, params: SamplingParams, mode: str) -> tuple[list[Candidate], Timings]:
        timings, start = Timings(), time.perf_counter()
        if model.engine_kind == "vllm" and mode != "plain":
            raise ApiError(400, f"mode={mode!r}: retrospection and contrastive decoding need the HF engine; this deployment runs vLLM (plain only)", param="mode")
        if isinstance(video, str):
            data, source = await fetch_video(video, self.settings.sources, self.storage), "video_url"
        else:
            data, source = check_upload(video, self.settings.sources), "the upload"
        timings.fetch_s = time.perf_counter() - start
        frames, duration_s = await asyncio.to_thread(decode_checked, data, source, model.video, self.settings.limits)
        timings.decode_s = time.perf_counter() - start - timings.fetch_s
        job = CaptionJob(frames, prompt or model.prompt, params, mode, duration_s)
        candidates = await (model.caption_async(job) if model.engine_kind == "vllm" else self.caption_batch((model, job)))
        timings.generate_s = time.perf_counter() - start - timings.fetch_s - timings.decode_s
        return candidates, timings

    def _authorize(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            raise ApiError(401, "missing or wrong API token: send 'Authorization: Bearer <token>'", "authentication_error")

    def _params(self, model: LoadedCaptioner, max_new_tokens: int | None, temperature: float, top_p: float, n: int, seed: int | None) -> SamplingParams:
        limits = self.settings.limits
        if max_new_tokens is not None and max_new_tokens > limits.max_new_tokens:
            raise ApiError(400, f"max_tokens={max_new_tokens}: over this server's limit of {limits.max_new_tokens}", param="max_tokens")
        if n > limits.max_n:
            raise ApiError(400, f"n={n}: over this server's limit of {limits.max_n}", param="n")
        if n > 1 and temperature == 0:
            raise ApiError(400, f"n={n} with temperature 0 (greedy) gives {n} identical captions; set a temperature above 0", param="n")
        return SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=0, seed=seed, max_new_tokens=max_new_tokens or model.max_new_tokens)

    async def _model_named(self, name: str) -> LoadedCaptioner:
        """The model a request's ``model`` field names: the main one (``NAME`` or ``NAME@ALIAS``) or a variant."""
        main = self.model
        if name == main.name or (main.alias and name == f"{main.name}@{main.alias}"):
            return main
        if name in self.settings.variants:
            return (await self.variant(name)).model
        served = sorted({main.name, *([f"{main.name}@{main.alias}"] if main.alias else []), *self.settings.variants})
        raise ApiError(404, f"model {name!r} is not served here; this deployment serves {', '.join(served)}", param="model", error_type="not_found_error")

    # --- routes ---------------------------------------------------------------------------------

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> JSONResponse:
        self._authorize(request)
        chat = await _parsed(request, openai_api.ChatRequest)
        unsupported = chat.unsupported_fields()
        if unsupported:
            raise ApiError(400, f"{', '.join(unsupported)}: not supported by this captioner", param=unsupported[0])
        model = await self._model_named(chat.model)
        params = self._params(model, chat.max_completion_tokens or chat.max_tokens, chat.temperature, chat.top_p, chat.n, chat.seed)
        url, prompt = openai_api.video_and_prompt(chat)
        _check_prompt(prompt, self.settings.limits.max_prompt_chars)
        candidates, _ = await self._caption(model, url, prompt, params, "plain")
        texts = [(candidate.text, candidate.finish_reason) for candidate in candidates]
        prompt_tokens = candidates[0].prompt_tokens or 0
        body = openai_api.completion_body(model.name, texts, prompt_tokens, sum(len(candidate.token_ids) for candidate in candidates), _fingerprint(model))
        return JSONResponse(body)

    @api.post("/v1/captions")
    async def captions(self, request: Request) -> JSONResponse:
        self._authorize(request)
        form: CaptionForm = await read_caption_request(request, self.settings.sources.max_bytes)
        _check_prompt(form.prompt, self.settings.limits.max_prompt_chars)
        model = await self._model_named(form.model or self.model.name)
        params = self._params(model, form.max_new_tokens, form.temperature, 1.0, 1, form.seed)
        candidates, timings = await self._caption(model, form.video_url or form.upload, form.prompt, params, form.mode)
        return JSONResponse(
            {
                "caption": candidates[0].text,
                "finish_reason": candidates[0].finish_reason,
                "model": model.name,
                "version": model.version,
                "mode": form.mode,
                "timings": {"fetch_s": round(timings.fetch_s, 4), "decode_s": round(timings.decode_s, 4), "generate_s": round(timings.generate_s, 4)},
            }
        )

    @api.get("/v1/models")
    async def models(self, request: Request) -> JSONResponse:
        self._authorize(request)
        model = self.model
        entries = [{"id": model.name, "object": "model", "created": int(model.loaded_at), "owned_by": "synpo", **model.describe()}]
        entries += [{"id": name, "object": "model", "owned_by": "synpo", "uri": uri, "variant_of": model.name} for name, uri in self.settings.variants.items()]
        return JSONResponse({"object": "list", "data": entries})

    @api.post("/v1/admin/reload")
    async def reload(self, request: Request) -> JSONResponse:
        self._authorize(request)
        if self.model.alias is None:
            raise ApiError(409, f"{self.model.uri} is not a registry alias; there is nothing to follow", param="model")
        try:
            return JSONResponse(await self.reload_if_moved())
        except (MlflowException, UserError) as error:
            raise ApiError(503, f"could not read {self.model.uri} from the registry: {error}", "service_unavailable") from None

    @api.get("/health")
    async def health(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @api.get("/ready")
    async def ready(self) -> JSONResponse:
        return JSONResponse({"status": "ready", **self.model.describe()})


def build_app(settings: ServeSettings) -> serve.Application:
    """The Serve application for ``settings``: the deployment with its scaling options, bound to the settings."""
    return CaptionServer.options(**settings.scaling.deployment_options()).bind(settings.model_dump(mode="json"))
