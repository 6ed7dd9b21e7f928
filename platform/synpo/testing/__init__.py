"""Test support for your own tests and ours: a real OpenAI-compatible judge server on loopback, with faults on demand.

Nothing in the library imports this package; it exists so that a test of code that calls an LLM
judge (ours, or yours built on :mod:`synpo.judging`) can run against real HTTP instead of a mock.

    from synpo.judging import JudgeConfig
    from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer

    def test_my_pipeline_survives_rate_limits():
        with LoopbackJudgeServer(FaultPlan(latency_ms=5, rate_429=0.3, retry_after_s=0.01)) as server:
            config = JudgeConfig(backend="openai", base_url=server.base_url, model="loopback-judge")
            ...   # run the code under test with `config`
            stats = server.stats()
        assert stats["faults_served"].get("429", 0) > 0 and stats["max_in_flight"] <= config.max_concurrency

**What it answers.** ``POST /v1/chat/completions`` with one of the judge's prompts
(:mod:`synpo.judging.prompts`) gets the offline rules judge's scores (:mod:`synpo.judging.rules`)
in OpenAI's reply format, with ``usage`` (word counts as tokens). The criterion is read from the
request's ``response_format.json_schema.name`` (``SCHEMA_NAMES``); a request without a schema is
recognised by its prompt's layout. The inputs are recovered by inverting the prompt templates
(:mod:`synpo.testing.judge_requests`). Anything else gets a 400. ``GET /v1/models`` lists one model,
``loopback-judge``.

**Faults** (:class:`~synpo.testing.loopback_app.FaultPlan`, every field documented there):
``latency_ms`` before every answer; per-request rates of 429 with ``Retry-After: retry_after_s``,
500, timeouts (the request hangs ``hang_s``), malformed answers (prose without JSON) and
out-of-range scores; ``script`` forces the faults of the first attempts of every distinct body
(``["429", "500"]``: each call fails twice, then is answered); ``only_criteria`` limits faults to
some criteria; ``answer_style`` wraps the JSON in a code fence or in prose; ``hold`` /
``hold_after_answers`` stop answering (requests wait, then get 503 when the hold is lifted), to
freeze a job part-way; ``api_key`` makes every request without ``Authorization: Bearer <api_key>`` a
401; ``echo_authorization`` quotes the request's ``Authorization`` header in every reply (a leaky
server, to test that keys are redacted). Draws are a hash of (seed, body, how often this body was
seen), so a retry gets a fresh draw and a run is reproducible whatever the arrival order.

**Counters** (``server.stats()`` or ``GET /stats``; ``POST /reset`` clears them): ``requests``,
``in_flight``, ``max_in_flight``, ``request_times``, ``token_times``, ``body_hashes``,
``answered_hashes`` (bodies answered with a judgement: what a real judge would bill; no hash twice
means no judgement was paid for twice), ``faults_served``, ``criteria`` and ``last_request``.
``POST /faults`` (JSON with the fields to change) or ``server.set_faults(plan)`` changes the faults
at run time.

**Three ways to start it** (:mod:`synpo.testing.loopback_server`):

- in a background thread of the test process, on a free port: ``with LoopbackJudgeServer(plan) as server``;
- as a subprocess on its own CPU core (for throughput benchmarks): ``with loopback_server_process(plan) as base_url``;
- from the command line, for dry runs of the jobs:
  ``python -m synpo.testing.loopback_server --port 8123 --latency-ms 100 --rate-429 0.1``.

Modules: :mod:`~synpo.testing.loopback_server` (starting it; ``free_port``),
:mod:`~synpo.testing.loopback_app` (the routes, :class:`FaultPlan`, the counters) and
:mod:`~synpo.testing.judge_requests` (criterion and inputs from a request).
"""
