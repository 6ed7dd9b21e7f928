"""Fixtures for the judge tests: the real loopback judge server (aiohttp, OpenAI protocol) in a thread."""

from __future__ import annotations

import pytest

from synpo.testing.loopback_server import FaultPlan, LoopbackJudgeServer


@pytest.fixture
def judge_server():
    """Start loopback judge servers with a fault plan: ``server = judge_server(FaultPlan(...))``; all stopped after the test."""
    servers: list[LoopbackJudgeServer] = []

    def start(faults: FaultPlan | None = None) -> LoopbackJudgeServer:
        server = LoopbackJudgeServer(faults or FaultPlan()).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()

