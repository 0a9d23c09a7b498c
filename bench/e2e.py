"""End to end through the emulator: Redis + PostgreSQL, 2 dispatcher processes, users sending /start.

Bots are registered through the real flow (emulator getMe/setWebhook, vault Encrypt); the rest of the 10,000
registered bots are seeded straight into the registry's tables. Updates are injected with the emulator's control
API (POST /_emulator/load), each into a chat of its own, at fixed offered rates and then as one burst
(saturation); the emulator's timeline (update → delivered → sent) gives latencies, lost and doubled replies.
Also: vault Decrypt latency as the dispatcher calls it (mTLS), the dispatcher's vault calls per update (from the
vault's audit log) and RSS per service after the load.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import QUICK, cpu_seconds, rss_kib, seed_bots
from bench.stats import account_timeline, percentile, vault_calls_per_update

REGISTERED_BOTS = 10_000


class Control:
    """The emulator's load/timeline/metrics control API (src/tgm/tools/telegram_emulator)."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_emulator", timeout=30.0)

    def available(self) -> bool:
        try:
            return self._http.get("/timeline", params={"since": 0, "limit": 1}).status_code == 200
        except httpx.HTTPError:
            return False

    def load(self, messages: list[dict[str, Any]]) -> list[int]:
        response = self._http.post("/load", json={"messages": messages})
        response.raise_for_status()
        return list(response.json()["update_ids"])

    def timeline(self, since: int, limit: int = 10_000) -> tuple[int, list[dict[str, Any]]]:
        response = self._http.get("/timeline", params={"since": since, "limit": limit})
        response.raise_for_status()
        body = response.json()
        return int(body["next"]), list(body["events"])

    def events_since(self, since: int) -> tuple[int, list[dict[str, Any]]]:
        events: list[dict[str, Any]] = []
        while True:
            nxt, page = self.timeline(since)
            events.extend(page)
            if not page or nxt == since:
                return nxt, events
            since = nxt

    def metrics(self) -> dict[str, Any]:
        response = self._http.get("/metrics")
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self._http.close()


def _count_sent(control: Control, since: int, chats: set[tuple[int, int]]) -> tuple[int, int, list[dict[str, Any]]]:
    nxt, events = control.events_since(since)
    replied = {(int(e["bot_id"]), int(e["chat_id"])) for e in events if e.get("kind") == "sent"}
    return nxt, len(replied & chats), events


def _phase(
    control: Control,
    bots: list[int],
    chat_base: int,
    rate: float | None,
    seconds: float,
    burst: int,
    settle_seconds: float,
    deadline_seconds: float,
    report: Callable[[str], None],
) -> tuple[dict[str, Any], int]:
    """Sends /start from new chats at `rate` for `seconds` (or `burst` at once when rate is None), waits for the
    replies (at most `deadline_seconds` after the last send; a chat with no reply by then is lost), and accounts
    for them from the timeline."""
    start_seq = _head(control)
    chats: list[tuple[int, int]] = []
    tick = 0.05
    total = int(rate * seconds) if rate else burst
    started = time.monotonic()
    sent = 0
    while sent < total:
        due = total if rate is None else min(total, int((time.monotonic() - started) * rate) + 1)
        batch: list[dict[str, Any]] = []
        while sent < due:
            chat_id = chat_base + sent
            bot_id = bots[sent % len(bots)]
            batch.append(
                {
                    "bot_id": bot_id,
                    "user": {"id": chat_id, "first_name": "Ana", "language_code": "pt-br"},
                    "text": "/start",
                }
            )
            chats.append((bot_id, chat_id))
            sent += 1
            if len(batch) >= 500:
                control.load(batch)
                batch = []
        if batch:
            control.load(batch)
        if rate is not None:
            next_due = started + (sent + 1) / rate
            time.sleep(max(0.0, min(tick, next_due - time.monotonic())))
    send_seconds = time.monotonic() - started
    wanted = set(chats)
    # Wait for replies: until all replied, nothing new for settle_seconds, or the deadline (then: lost).
    deadline = time.monotonic() + deadline_seconds
    last_progress, last_count = time.monotonic(), -1
    while time.monotonic() < deadline:
        _, count, _ = _count_sent(control, start_seq, wanted)
        if count >= len(wanted):
            break
        if count != last_count:
            last_count, last_progress = count, time.monotonic()
        elif time.monotonic() - last_progress > settle_seconds:
            break
        time.sleep(1.0)
    time.sleep(1.0)  # a late double would show up right after the last reply
    end_seq, events = control.events_since(start_seq)
    result = account_timeline(events, wanted)
    label = f"{rate:.0f}/s offered" if rate else f"burst of {burst}"
    out = {
        "label": label,
        "deadline_seconds": deadline_seconds,
        "offered_rps": rate if rate else math.nan,
        "achieved_send_rps": total / send_seconds if send_seconds > 0 else math.nan,
        "updates": total,
        "replied": result.replied,
        "lost": result.lost,
        "doubled": result.doubled,
        "replies_per_second": result.replies_per_second,
        "webhook_to_reply_p50_ms": percentile(result.webhook_to_reply_ms, 50),
        "webhook_to_reply_p99_ms": percentile(result.webhook_to_reply_ms, 99),
        "created_to_reply_p50_ms": percentile(result.created_to_reply_ms, 50),
        "created_to_reply_p99_ms": percentile(result.created_to_reply_ms, 99),
    }
    report(
        f"e2e: {label}: {result.replied}/{total} replied, {out['replies_per_second']:.0f} replies/s, "
        f"webhook→reply p50 {out['webhook_to_reply_p50_ms']:.0f} ms p99 {out['webhook_to_reply_p99_ms']:.0f} ms, "
        f"lost {result.lost}, doubled {result.doubled}"
    )
    return out, end_seq


def _drain(control: Control, seconds: float) -> None:
    """Waits (at most `seconds`) until the emulator has no webhook delivery in flight and no new "sent" events."""
    end = time.monotonic() + seconds
    seq = _head(control)
    while time.monotonic() < end:
        time.sleep(2.0)
        now = _head(control)
        if now == seq and not control.metrics().get("webhook_in_flight"):
            return
        seq = now


def _head(control: Control) -> int:
    # Jump to the end of the timeline without holding every old event: page with a large limit.
    since = 0
    while True:
        step, page = control.timeline(since, 10_000)
        if not page or step == since:
            return since
        since = step


def _audit_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def _decrypt_latency(stack: Any, db_url: str, bot_telegram_id: int, calls: int) -> dict[str, float]:
    """p50/p99 of vault Decrypt (BOT_TOKEN, purpose SEND) over mTLS with the dispatcher's certificate."""
    from tgm.domain.ports import DecryptPurpose, SecretKind
    from tgm.services.botregistry.adapters.sql import SqlBotRepository, make_engine, make_session_factory
    from tgm.vault_client.client import GrpcTokenVault

    engine = make_engine(db_url)
    bot = SqlBotRepository(make_session_factory(engine)).by_telegram_bot_id(bot_telegram_id)
    engine.dispose()
    assert bot is not None
    channel = stack.channel(stack.vault_addr, identity="dispatcher")
    vault = GrpcTokenVault(channel)
    samples = []
    try:
        for _ in range(20):  # warm-up: TLS session, first-call costs
            vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, bot.sealed_token)
        for _ in range(calls):
            t0 = time.perf_counter()
            vault.decrypt(bot.id, SecretKind.BOT_TOKEN, DecryptPurpose.SEND, bot.sealed_token)
            samples.append((time.perf_counter() - t0) * 1000)
    finally:
        channel.close()
    return {"calls": calls, "p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)}


def _cpu_by_role(stack: Any) -> dict[str, float]:
    """CPU seconds used so far by each kind of process (the dispatchers summed)."""
    used: dict[str, float] = {}
    for process in stack.processes:
        role = "dispatchers" if process.name.startswith("dispatcher") else process.name
        used[role] = used.get(role, 0.0) + cpu_seconds(process.popen.pid)
    return used


def _cpu_per_update(
    before: dict[str, float], after: dict[str, float], phase: dict[str, Any], report: Callable[[str], None]
) -> dict[str, float]:
    """CPU milliseconds each kind of process spent per replied update during one phase (includes its idle polling
    while waiting for the last replies: small against thousands of updates)."""
    replied = max(1, int(phase["replied"]))
    per_update = {role: (after.get(role, 0.0) - used) * 1000 / replied for role, used in before.items()}
    report("e2e:   CPU ms per update: " + ", ".join(f"{role} {ms:.2f}" for role, ms in sorted(per_update.items())))
    return per_update


def run(report: Callable[[str], None] = print) -> dict[str, Any]:
    import redis

    from testbed.postgres import running_postgres
    from testbed.redis_server import start_redis, stop_redis
    from tgm.registry.v1 import registry_pb2, registry_pb2_grpc
    from tgm.tools.devstack.emulator_control import EmulatorControl
    from tgm.tools.devstack.stack import Stack, StackConfig

    real_bots = 20 if QUICK else 50
    registered = 2_000 if QUICK else REGISTERED_BOTS
    seconds = 4.0 if QUICK else 10.0
    rates = (250.0, 500.0) if QUICK else (250.0, 500.0, 1000.0)
    burst = 1_500 if QUICK else 3_000
    settle = 10.0 if QUICK else 20.0
    deadline = 20.0 if QUICK else 45.0  # seconds after the last send; unanswered by then = lost

    workdir = Path(tempfile.mkdtemp(prefix="tgm-bench-e2e-"))
    redis_server, redis_process, redis_dir = start_redis()
    try:
        with running_postgres() as postgres:
            redis.Redis.from_url(redis_server.url).flushall()
            config = StackConfig(
                run_dir=workdir / "run",
                redis_url=redis_server.url,
                db_url=postgres.url,
                dispatcher_processes=2,
                log_level="WARNING",
            )
            stack = Stack(config)
            try:
                report("e2e: starting emulator, vault, registry, gateway, 2 dispatchers (Redis + PostgreSQL)")
                stack.start()
                control = Control(stack.emulator_url)
                has_load_api = control.available()
                emulator = EmulatorControl(stack.emulator_url)
                channel = stack.channel(stack.registry_addr)
                registry = registry_pb2_grpc.RegistryServiceStub(channel)
                bot_ids: list[int] = []
                t0 = time.monotonic()
                for i in range(real_bots):
                    created = emulator.create_bot(f"bench_{i}_bot", f"Bench {i}")
                    registry.RegisterBot(
                        registry_pb2.RegisterBotRequest(owner_id=10_000 + i, token=str(created["token"])), timeout=20
                    )
                    bot_ids.append(int(created["id"]))
                register_seconds = time.monotonic() - t0
                channel.close()
                emulator.close()
                report(f"e2e: registered {real_bots} bots (real flow) in {register_seconds:.1f}s; seeding the rest")
                seed_bots(postgres.url, registered - real_bots - 1)  # -1: the manager bot is registered too

                decrypt = _decrypt_latency(stack, postgres.url, bot_ids[0], 300 if QUICK else 1000)
                report(f"e2e: vault Decrypt over mTLS: p50 {decrypt['p50_ms']:.2f} ms p99 {decrypt['p99_ms']:.2f} ms")
                audit_before = len(_audit_lines(stack.vault_audit_file))

                phases = []
                chat_base = 50_000_000
                if has_load_api:
                    for rate in rates:
                        before = _cpu_by_role(stack)
                        result, _ = _phase(control, bot_ids, chat_base, rate, seconds, 0, settle, deadline, report)
                        result["cpu_ms_per_update"] = _cpu_per_update(before, _cpu_by_role(stack), result, report)
                        phases.append(result)
                        chat_base += 1_000_000
                        if result["lost"]:
                            # It did not keep up: a higher rate only measures the backlog. Let the backlog drain
                            # (bounded) so the burst starts from an idle pipeline, and skip the higher rates.
                            report(f"e2e: {result['label']} did not keep up; skipping higher fixed rates")
                            _drain(control, deadline)
                            break
                    before = _cpu_by_role(stack)
                    result, _ = _phase(control, bot_ids, chat_base, None, 0, burst, settle, deadline, report)
                    result["cpu_ms_per_update"] = _cpu_per_update(before, _cpu_by_role(stack), result, report)
                    phases.append(result)
                else:
                    report("e2e: the emulator has no /_emulator/load|timeline|metrics yet: no load phases")

                audit_after = _audit_lines(stack.vault_audit_file)[audit_before:]
                handled = sum(p["replied"] for p in phases)
                per_update = vault_calls_per_update(audit_after, handled)
                rss = {}
                dispatcher_total = 0
                for process in stack.processes:
                    kib = rss_kib(process.popen.pid)
                    rss[process.name] = kib / 1024
                    if process.name.startswith("dispatcher"):
                        dispatcher_total += kib
                metrics = control.metrics() if has_load_api else {}
                control.close()
                return {
                    **({} if has_load_api else {"skipped": "emulator control API (load/timeline/metrics) missing"}),
                    "real_bots": real_bots,
                    "registered_bots": registered,
                    "register_seconds": register_seconds,
                    "phases": phases,
                    "vault_decrypt": decrypt,
                    "vault_calls_per_update": per_update,
                    "dispatcher_vault_calls": sum(1 for line in audit_after if line.get("caller") == "dispatcher"),
                    "rss_mib": rss,
                    "emulator_metrics": metrics,
                }
            finally:
                stack.stop()
    finally:
        stop_redis(redis_process, redis_dir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
