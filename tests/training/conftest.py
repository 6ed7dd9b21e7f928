from __future__ import annotations

import pytest

from synpo.testing.loopback_server import free_port


@pytest.fixture(scope="module")
def process_group():
    """A one-rank gloo process group, as ``deepspeed.initialize(dist_init_required=False)`` expects."""
    import deepspeed

    single_rank = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    with pytest.MonkeyPatch.context() as environment:
        for name, value in single_rank.items():
            environment.setenv(name, value)
        deepspeed.init_distributed(dist_backend="gloo")
        yield
        deepspeed.comm.destroy_process_group()
