"""Gateway ack comparison: tgm's gateway vs aiogram's multibot webhook server vs bare FastAPI (+ one LPUSH).

Every contender is its own server process on a free loopback port, loaded by the same wrk command
(`wrk -t2 -c64 -d<N>s --latency`, a Lua script spreading realistic /start Updates over 100 bots with their
secrets). Rounds are interleaved in a rotating order and medians reported, so ratios come from one sitting.
tgm runs in Redis mode (gateway + registry + vault, no dispatchers) with 10,000 registered bots.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    QUICK,
    REPO_ROOT,
    SECRET_HEADER,
    Target,
    fake_token,
    free_port,
    lua_script,
    raw_request,
    seed_bots,
    update_body,
    wait_port,
)
from bench.openloop import open_loop
from bench.stats import WrkResult, median, parse_wrk, percentile, ratio, rotated

PEER_VENV = REPO_ROOT / "bench" / ".venv-peers"
PEER_REQUIREMENTS = REPO_ROOT / "bench" / "requirements-peers.txt"
REGISTERED_BOTS = 10_000
LOADED_BOTS = 100
TGM_1 = "tgm gateway, 1 process"
TGM_2 = "tgm gateway, 2 processes"
AIOGRAM = "aiogram 3 multibot (aiohttp)"
FASTAPI = "bare FastAPI (secret check)"
FASTAPI_LPUSH = "bare FastAPI + 1 LPUSH"


@dataclass
class Contender:
    name: str
    port: int
    targets: list[Target]
    results: list[WrkResult] = field(default_factory=list)
    note: str = ""


def ensure_wrk() -> str | None:
    """The wrk binary; installs the Debian package when missing and root, else says how and returns None."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk (apt-get install -y wrk)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if not found:
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        return shutil.which("wrk")
    print("bench: wrk is missing — install it with `sudo apt-get install -y wrk`; skipping the gateway comparison")
    return None


def ensure_peer_venv() -> Path | None:
    """bench/.venv-peers with the pinned peers (aiogram), rebuilt when requirements-peers.txt changes."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".requirements.sha256"
    wanted = hashlib.sha256(PEER_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print("bench: creating bench/.venv-peers (aiogram, from bench/requirements-peers.txt)", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", "--clear", str(PEER_VENV)],
        [str(python), "-m", "pip", "install", "-q", "-r", str(PEER_REQUIREMENTS)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"bench: could not build the peer venv ({done.stderr.strip()[-500:]}); skipping aiogram")
            return None
    stamp.write_text(wanted)
    return python


def run_wrk(wrk: str, contender: Contender, seconds: float, workdir: Path) -> WrkResult:
    script = workdir / f"{contender.port}.lua"
    if not script.exists():
        script.write_text(lua_script(contender.targets))
    command = [
        wrk,
        "-t2",
        "-c64",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{contender.port}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    return parse_wrk(done.stdout)


def prime(contender: Contender) -> None:
    """One request to every bot before any timing: per-bot first-use costs (tgm's route cache, aiogram's Bot
    objects, ~100 ms each) are not what a long-running server pays per update. Also proves each secret is accepted."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{contender.port}", timeout=30) as client:
        for i, target in enumerate(contender.targets):
            answer = client.post(
                target.path,
                content=update_body(800_000_000 + i, 400_000 + i),
                headers={"Content-Type": "application/json", SECRET_HEADER: target.secret},
            )
            if answer.status_code != 200:
                raise RuntimeError(f"{contender.name} answered {answer.status_code} to a valid update")


class Servers:
    """Peer processes started by the bench; stop() ends exactly those."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str] | None = None
    ) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [*command[:1], *[arg.replace("{port}", str(port)) for arg in command[1:]]],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        wait_port(port, 60, process)
        return port, process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _second_gateway(stack: Any, redis_url: str, servers: Servers) -> int | None:
    """A gateway with GATEWAY_WORKERS=2, when the gateway has that setting; its port, else None."""
    from tgm.services.gateway.settings import GatewaySettings

    if "gateway_workers" not in GatewaySettings.model_fields:
        return None
    port = free_port()
    env = stack._env(  # the devstack's environment for the gateway identity (mTLS certificate included)
        "gateway",
        "gateway",
        REGISTRY_ADDR=stack.registry_addr,
        VAULT_ADDR=stack.vault_addr,
        REDIS_URL=redis_url,
        ENVELOPE_SIGNING_KEY=stack.envelope_signing_key,  # the same key as the stack's first gateway
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS="2",
    )
    log = (servers.logs / "gateway-2.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "tgm.services.gateway", "serve"],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    servers.processes.append(process)
    wait_port(port, 60, process)
    return port


def run(report: Callable[[str], None] = print) -> dict[str, Any]:
    """The comparison; returns {"rows": {name: {...}}, "ratios": {...}, "fixed_rate": {...}, "settings": {...}}."""
    import redis

    from testbed.redis_server import start_redis, stop_redis
    from tgm.tools.devstack.stack import Stack, StackConfig

    wrk = ensure_wrk()
    if wrk is None:
        return {"skipped": "wrk missing"}
    seconds = 3.0 if QUICK else 10.0
    rounds = 1 if QUICK else 3
    warmup = 1.0 if QUICK else 2.0
    registered = 2_000 if QUICK else REGISTERED_BOTS
    peer_python = ensure_peer_venv()

    workdir = Path(tempfile.mkdtemp(prefix="tgm-bench-gw-"))
    redis_server, redis_process, redis_dir = start_redis()
    servers = Servers(workdir)
    stack = Stack(
        StackConfig(run_dir=workdir / "run", redis_url=redis_server.url, dispatcher_processes=0, log_level="WARNING")
    )
    try:
        report(f"gateway: starting vault + registry + gateway (Redis mode), seeding {registered:,} bots")
        stack.start()
        seeded = seed_bots(stack.db_url, registered)
        loaded = seeded[:: max(1, len(seeded) // LOADED_BOTS)][:LOADED_BOTS]
        tgm_targets = [Target(f"/webhook/{public_id}", secret) for public_id, secret in loaded]
        peer_bots = workdir / "peer-bots.json"
        peer_bots.write_text(json.dumps([{"public_id": p, "secret": s} for p, s in loaded]))
        aiogram_bots = [{"token": fake_token(i), "secret": s} for i, (_, s) in enumerate(loaded)]
        aiogram_file = workdir / "aiogram-bots.json"
        aiogram_file.write_text(json.dumps(aiogram_bots))

        contenders = [Contender(TGM_1, stack.gateway_port, tgm_targets)]
        second = _second_gateway(stack, redis_server.url, servers)
        if second is not None:
            contenders.append(Contender(TGM_2, second, tgm_targets))
        if peer_python is not None:
            port, _ = servers.start(
                "aiogram", [str(peer_python), "bench/peers/aiogram_multibot.py", "{port}", str(aiogram_file)]
            )
            contenders.append(
                Contender(AIOGRAM, port, [Target(f"/webhook/bot/{b['token']}", b["secret"]) for b in aiogram_bots])
            )
        py = sys.executable
        port, _ = servers.start("fastapi", [py, "-m", "bench.peers.fastapi_peer", "{port}", str(peer_bots)])
        contenders.append(Contender(FASTAPI, port, tgm_targets))
        port, _ = servers.start(
            "fastapi-lpush",
            [py, "-m", "bench.peers.fastapi_peer", "{port}", str(peer_bots), "--lpush", redis_server.url],
        )
        contenders.append(Contender(FASTAPI_LPUSH, port, tgm_targets))

        flush = redis.Redis.from_url(redis_server.url)
        for contender in contenders:
            prime(contender)
        for contender in contenders:  # warm-up: connections, route caches, imports
            run_wrk(wrk, contender, warmup, workdir)
            flush.flushdb()
        names = [c.name for c in contenders]
        by_name = {c.name: c for c in contenders}
        for round_no in range(rounds):
            for name in rotated(names, round_no):
                result = run_wrk(wrk, by_name[name], seconds, workdir)
                by_name[name].results.append(result)
                flush.flushdb()  # every contender starts from the same empty Redis
                report(
                    f"gateway: round {round_no + 1}/{rounds} {name}: {result.requests_per_second:,.0f} req/s "
                    f"p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms"
                    + (f" non-2xx {result.non_2xx}" if result.non_2xx else "")
                )

        rps = {c.name: median(r.requests_per_second for r in c.results) for c in contenders}
        rows = {
            c.name: {
                "rps": rps[c.name],
                "p50_ms": median(r.p50_ms for r in c.results),
                "p99_ms": median(r.p99_ms for r in c.results),
                "non_2xx": sum(r.non_2xx for r in c.results),
                "socket_errors": sum(r.socket_errors for r in c.results),
                "rounds": [r.__dict__ for r in c.results],
            }
            for c in contenders
        }
        tgm_rps = rps[TGM_1]
        ratios = {
            "tgm/aiogram": ratio(tgm_rps, rps.get(AIOGRAM, float("nan"))),
            "tgm/fastapi_lpush": ratio(tgm_rps, rps[FASTAPI_LPUSH]),
            "tgm/fastapi": ratio(tgm_rps, rps[FASTAPI]),
        }
        if TGM_2 in rps:
            ratios["tgm_2proc/tgm_1proc"] = ratio(rps[TGM_2], tgm_rps)
            ratios["tgm_2proc/aiogram"] = ratio(rps[TGM_2], rps.get(AIOGRAM, float("nan")))

        fixed = {}
        rate = 1000.0
        fixed_seconds = 5.0 if QUICK else 10.0
        for offset, contender in enumerate((by_name[TGM_1], by_name[FASTAPI])):

            def make(i: int, c: Contender = contender, base: int = 900_000_000 + offset * 10_000_000) -> bytes:
                uid = base + i
                return raw_request("127.0.0.1", c.port, c.targets[i % len(c.targets)], update_body(uid, 300_000 + i))

            paced = open_loop("127.0.0.1", contender.port, make, rate, fixed_seconds, connections=64)
            flush.flushdb()
            fixed[contender.name] = {
                "offered_rps": rate,
                "achieved_rps": paced.achieved_rate,
                "p50_ms": percentile(paced.latencies_ms, 50),
                "p99_ms": percentile(paced.latencies_ms, 99),
                "errors": paced.errors,
                "seconds": fixed_seconds,
            }
            report(
                f"gateway: {rate:.0f} req/s offered to {contender.name}: p50 {fixed[contender.name]['p50_ms']:.1f} ms "
                f"p99 {fixed[contender.name]['p99_ms']:.1f} ms, {paced.errors} errors"
            )
        flush.close()
        return {
            "rows": rows,
            "ratios": ratios,
            "fixed_rate": fixed,
            "settings": {
                "wrk": f"-t2 -c64 -d{seconds:g}s --latency",
                "rounds": rounds,
                "registered_bots": registered,
                "loaded_bots": len(loaded),
                "second_process_row": second is not None,
            },
        }
    finally:
        servers.stop()
        stack.stop()
        stop_redis(redis_process, redis_dir)
        if os.environ.get("BENCH_KEEP") is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            report(f"gateway: logs kept in {workdir}")


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
