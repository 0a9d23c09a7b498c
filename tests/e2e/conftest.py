"""A whole tgm stack of real processes, once on the embedded default and once on PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig


@pytest.fixture(params=["embedded", "postgres_redis"])
def stack(request: pytest.FixtureRequest, tmp_path) -> Iterator[Stack]:
    config = StackConfig(run_dir=tmp_path / "run")
    if request.param == "postgres_redis":
        redis_server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(redis_server.url).flushall()
        config.redis_url, config.redis_urls = redis_server.url, redis_server.stack_config()["redis_urls"]
        config.db_url = request.getfixturevalue("fresh_postgres_url")
        # Two gateway processes on one port (uvicorn workers, each built from the environment by the app factory):
        # every end-to-end test in Redis mode goes through whichever of them the kernel picks.
        config.extra_env = {"gateway": {"GATEWAY_WORKERS": "2"}}
    stack = Stack(config).start()
    try:
        yield stack
    finally:
        stack.stop()
    if request.param == "postgres_redis":
        assert not request.getfixturevalue("redis_server").take_acl_denials(), "Redis refused a service a command"


@pytest.fixture
def emulator(stack: Stack) -> Iterator[EmulatorControl]:
    control = EmulatorControl(stack.emulator_url)
    yield control
    control.close()


@pytest.fixture
def register(stack: Stack) -> Iterator[Callable[..., registry_pb2.Bot]]:
    channel = stack.channel(stack.registry_addr)  # mTLS, operator certificate
    registry = registry_pb2_grpc.RegistryServiceStub(channel)

    def register_bot(owner_id: int, token: str) -> registry_pb2.Bot:
        reply = registry.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=owner_id, token=token), timeout=20)
        return reply.bot

    yield register_bot
    channel.close()
