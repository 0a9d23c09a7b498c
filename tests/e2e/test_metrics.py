"""Prometheus metrics and probes of every service of a Redis-mode stack (two gateway workers, two dispatchers),
scraped before and after real traffic: each counter moved by exactly what was sent."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tgm.tools.devstack.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "dispatcher-0", "dispatcher-1", "botregistry", "vault")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, url
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of `name` over the series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, series), value in samples.items() if sample == name and wanted <= set(series))


def scrape_all(stack: Stack) -> dict[str, Samples]:
    return {name: scrape(stack.metrics_url(name)) for name in SERVICES}


def delta(before: dict[str, Samples], after: dict[str, Samples], names: tuple[str, ...], metric: str, **labels: str):
    return sum(total(after[n], metric, **labels) - total(before[n], metric, **labels) for n in names)


@pytest.mark.parametrize("stack", ["postgres_redis"], indirect=True)
def test_counters_move_by_what_was_sent_and_every_probe_answers(stack: Stack, emulator, register) -> None:
    bot = emulator.create_bot("metrics_bot", "Metrics")
    register(owner_id=9101, token=bot["token"])
    before = scrape_all(stack)
    assert total(before["botregistry"], "telegram_active_bots") == _active_bots_in(stack.db_url) >= 1
    users = [{"id": 770_000 + n, "first_name": f"u{n}"} for n in range(6)]
    for user in users:
        emulator.send_text(bot["id"], user, "/start")
    for user in users[:2]:
        emulator.send_text(bot["id"], user, "just text")
    for user in users:
        wait_for(lambda user=user: emulator.bot_messages(bot["id"], user["id"]), 60, "the welcome replies")

    dispatchers = ("dispatcher-0", "dispatcher-1")

    def counted() -> dict[str, float]:
        after = scrape_all(stack)
        return {
            "accepted": delta(before, after, ("gateway",), "tgm_webhook_updates_total", outcome="accepted"),
            "commands": delta(before, after, dispatchers, "telegram_messages_total", message_type="command"),
            "texts": delta(before, after, dispatchers, "telegram_messages_total", message_type="text"),
        }

    expected = {"accepted": 8.0, "commands": 6.0, "texts": 2.0}
    _poll(lambda: counted() == expected, "the counters to reach what was sent")
    after = scrape_all(stack)
    assert counted() == expected

    # Dispatcher: drains timed and counted; queue sizes read from Redis.
    assert delta(before, after, dispatchers, "tgm_actor_messages_total", actor="drain_chat", outcome="ok") >= 1
    assert delta(before, after, dispatchers, "tgm_actor_duration_seconds_count", actor="drain_chat") >= 1
    assert all(("tgm_queue_size", (("queue", "updates"),)) in after[n] for n in dispatchers)
    # Registry and vault: gRPC calls by method and caller; the vault's decrypts by caller and outcome.
    assert delta(before, after, ("botregistry",), "tgm_grpc_server_requests_total", caller="dispatcher") >= 1
    assert total(after["vault"], "tgm_vault_calls_total", verb="decrypt", caller="dispatcher", outcome="ok") >= 1
    assert ("tgm_vault_key_rotation_due", ()) in after["vault"]
    assert total(after["vault"], "tgm_grpc_server_requests_total", method="Decrypt", code="OK") >= 1
    # No bot id, user id or token in any label.
    for samples in after.values():
        for _, series in samples:
            for _, value in series:
                assert bot["token"] not in value and str(bot["id"]) not in value

    for name in ("dispatcher-0", "dispatcher-1", "botregistry", "vault"):
        base = stack.metrics_url(name).removesuffix("/metrics")
        for probe in ("/healthz", "/readyz"):
            answer = httpx.get(base + probe, timeout=10)
            assert answer.status_code == 200 and answer.text.startswith("ok"), (name, probe, answer.text)

    # `tgm health` reads the stack's probes: all ok, then the stopped dispatcher named.
    import subprocess
    import sys

    health = [sys.executable, "-m", "tgm.apps.cli", "health", "--stack-file", str(stack.config.run_dir / "stack.json")]
    every = subprocess.run(health, capture_output=True, text=True, timeout=60)
    assert every.returncode == 0, every.stdout
    assert {line.split()[0] for line in every.stdout.splitlines()} >= {*SERVICES, "telegram"}
    stack.stop_process("dispatcher-1")
    one_down = subprocess.run(health, capture_output=True, text=True, timeout=60)
    assert one_down.returncode == 1
    assert [line.split()[0] for line in one_down.stdout.splitlines() if "FAILING" in line] == ["dispatcher-1"]


def _active_bots_in(db_url: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(sqlalchemy.text("SELECT count(*) FROM bots WHERE status = 'active'")) or 0)
    finally:
        engine.dispose()


def _poll(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.fixture
def debug_stack(tmp_path, redis_server, fresh_postgres_url):
    """A Redis-mode stack whose gateway and registry log at DEBUG (their per-call lines carry the request id)."""
    import redis

    from tgm.tools.devstack.stack import StackConfig

    redis.Redis.from_url(redis_server.url).flushall()
    config = StackConfig(
        run_dir=tmp_path / "run",
        **redis_server.stack_config(),
        db_url=fresh_postgres_url,
        dispatcher_processes=1,
        manager_bot=False,
        extra_env={"gateway": {"LOG_LEVEL": "DEBUG"}, "botregistry": {"LOG_LEVEL": "DEBUG"}},
    )
    stack = Stack(config).start()
    try:
        yield stack
    finally:
        stack.stop()


def test_one_request_id_follows_an_update_through_every_service(debug_stack: Stack) -> None:
    import json

    from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
    from tgm.tools.devstack.emulator_control import EmulatorControl

    emulator = EmulatorControl(debug_stack.emulator_url)
    channel = debug_stack.channel(debug_stack.registry_addr)
    try:
        bot = emulator.create_bot("traced_bot", "Traced")
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        registry.RegisterBot(registry_pb2.RegisterBotRequest(owner_id=9102, token=bot["token"]), timeout=20)
        user = {"id": 780_001, "first_name": "Tracy"}
        emulator.send_text(bot["id"], user, "/start")
        wait_for(lambda: emulator.bot_messages(bot["id"], user["id"]), 60, "the reply")
    finally:
        channel.close()
        emulator.close()

    def lines(process: str) -> list[dict[str, object]]:
        found = []
        for raw in debug_stack.process(process).log_path.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(raw))
            except ValueError:
                continue
        return found

    def handled() -> list[dict[str, object]]:
        return [line for line in lines("dispatcher-0") if line.get("message") == "update handled"]

    # The reply goes out before the drain completes the update and logs it: wait for the line, do not race it.
    _poll(lambda: len(handled()) >= 1, "the dispatcher's 'update handled' line")
    assert len(handled()) == 1
    request_id = handled()[0]["request_id"]
    assert isinstance(request_id, str) and len(request_id) == 32

    def carries(process: str, message: str) -> bool:
        return any(line.get("message") == message and line.get("request_id") == request_id for line in lines(process))

    _poll(lambda: carries("vault", "vault call"), "the vault's audit record of the token decrypt")
    assert carries("gateway", "update accepted"), "the gateway's line for the webhook"
    assert carries("botregistry", "grpc call served"), "the registry's line for the dispatcher's GetBot"
    audit = [json.loads(raw) for raw in debug_stack.vault_audit_file.read_text().splitlines()]
    assert any(entry.get("request_id") == request_id and entry.get("verb") == "decrypt" for entry in audit)
