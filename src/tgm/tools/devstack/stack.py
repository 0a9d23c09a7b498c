"""Starts tgm's processes on loopback and waits until each is ready. Used by `make run` and the e2e tests.

Each process gets only the environment it needs: the vault alone sees the encryption key. Every gRPC hop is
mutual TLS: a local CA and one certificate per identity are created once in `{run_dir}/certs`
(src/tgm/tools/devstack/certs.py), and each process gets its own certificate through
TLS_CA_FILE/TLS_CERT_FILE/TLS_KEY_FILE.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

from tgm.grpc_runtime.channels import open_channel, wait_until_serving
from tgm.grpc_runtime.tls import TlsFiles, tls_env
from tgm.tools.devstack.certs import ensure_certs

SRC_ROOT = Path(__file__).resolve().parents[3]  # the folder holding the tgm package: src/ in a checkout
REPO_ROOT = SRC_ROOT.parent
_BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_encryption_key() -> str:
    return "base64:" + base64.b64encode(secrets.token_bytes(32)).decode()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Polls `condition` until true; raises TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(Exception):
            if condition():
                return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=1.0).status_code == 200


@dataclass
class StackConfig:
    run_dir: Path
    redis_url: str = ""  # empty: embedded mode (in-process broker, gateway + dispatcher in one process)
    # Per-service Redis URLs ("gateway", "dispatcher": each its own ACL user, maybe TLS); unset ones use redis_url.
    redis_urls: dict[str, str] = field(default_factory=dict, repr=False)
    db_url: str = ""  # empty: SQLite in run_dir
    encryption_key: str = field(default_factory=new_encryption_key, repr=False)
    telegram_api_base_url: str = ""  # empty: start the emulator
    webhook_base_url: str = ""  # empty: the local gateway
    dispatcher_processes: int = 2
    dispatcher_threads: int = 8  # the service default: the drain is I/O-bound, 8 threads per process measured best
    log_level: str = "INFO"
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Create a manager bot in the emulator (can_manage_bots) and give its token to the registry only.
    manager_bot: bool = True
    # A real manager bot's token (with a real Telegram API): given to the registry only, never printed.
    manager_bot_token: str = field(default="", repr=False)
    gateway_port: int = 0  # 0: any free port (a fixed one for a reverse proxy or tunnel in front of it)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)


class Stack:
    """A running set of tgm processes; stop() ends them all."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: list[Process] = []
        self.logs_dir = config.run_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.emulator_url = config.telegram_api_base_url
        self.gateway_port = config.gateway_port or free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        # Prometheus /metrics and the /healthz + /readyz probes of the services that have no HTTP port of their own.
        self.metrics_ports: dict[str, int] = {}
        self.vault_addr = f"127.0.0.1:{free_port()}"
        self.registry_addr = f"127.0.0.1:{free_port()}"
        self.db_url = config.db_url or f"sqlite:///{config.run_dir / 'registry.db'}"
        self.certs: dict[str, TlsFiles] = ensure_certs(config.run_dir / "certs")
        self.vault_keyring_file = config.run_dir / "vault-keyring.json"
        self.vault_audit_file = config.run_dir / "vault-audit.log"
        # The emulator's view of the manager bot ({id, username, token}) when the stack created one.
        self.manager: dict[str, object] | None = None
        self.callback_signing_key = secrets.token_urlsafe(32)
        self.envelope_signing_key = secrets.token_urlsafe(32)  # gateway tags, dispatchers verify (Redis mode)

    def channel(self, target: str, identity: str = "operator") -> grpc.Channel:
        """An mTLS channel to one of the stack's gRPC services, presenting `identity`'s certificate."""
        server_name = {self.vault_addr: "vault", self.registry_addr: "botregistry"}.get(target)
        return open_channel(target, tls=self.certs[identity], server_name=server_name)

    @property
    def embedded(self) -> bool:
        return not self.config.redis_url

    def _env(self, name: str, identity: str = "", **values: str) -> dict[str, str]:
        env = {key: os.environ[key] for key in _BASE_ENV_KEYS if key in os.environ}
        env.update(PYTHONPATH=str(SRC_ROOT), PYTHONUNBUFFERED="1", LOG_LEVEL=self.config.log_level)
        if identity:
            env.update(tls_env(self.certs[identity]))
        env.update(values)
        env.update(self.config.extra_env.get(name, {}))
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        log_path = self.logs_dir / f"{name}.log"
        log_file = log_path.open("ab")
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        log_file.close()
        process = Process(name, popen, log_path, list(args), dict(env))
        self.processes.append(process)
        return process

    def process(self, name: str) -> Process:
        """The latest process started under `name`."""
        for process in reversed(self.processes):
            if process.name == name:
                return process
        raise KeyError(name)

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Sends `sig` to one process (fault injection, restarts) and waits for it to exit; its exit code."""
        process = self.process(name)
        if process.popen.poll() is None:
            process.popen.send_signal(sig)
        try:
            return process.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.popen.kill()
            return process.popen.wait()

    def restart_process(self, name: str) -> Process:
        """Starts `name` again with the same command and environment (after stop_process); the caller waits for
        whatever readiness it needs. It appends to the same log file."""
        old = self.process(name)
        if old.popen.poll() is None:
            raise RuntimeError(f"{name} is still running")
        self.processes.remove(old)
        return self._spawn(name, old.args, old.env)

    def _check_alive(self) -> None:
        for process in self.processes:
            if process.popen.poll() is not None:
                tail = process.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}; log tail:\n{tail}")

    def _wait(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        def alive_and_ready() -> bool:
            self._check_alive()
            return condition()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with suppress(Exception):
                if alive_and_ready():
                    return
            time.sleep(0.1)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def start(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if not self.emulator_url:
            port = free_port()
            self.emulator_url = f"http://127.0.0.1:{port}"
            self._spawn(
                "emulator",
                [
                    "-m",
                    "tgm.tools.telegram_emulator",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--retry-max-delay",
                    "4",
                ],
                self._env("emulator"),
            )
            self._wait(http_ok(f"{self.emulator_url}/_emulator/health"), "the Telegram emulator")
            if self.config.manager_bot:
                from tgm.tools.devstack.emulator_control import EmulatorControl

                control = EmulatorControl(self.emulator_url)
                try:
                    self.manager = control.create_bot("tgm_manager_bot", "tgm manager", can_manage_bots=True)
                finally:
                    control.close()
        token = str(self.manager["token"]) if self.manager else self.config.manager_bot_token
        manager_env = {"MANAGER_BOT_TOKEN": token} if token else {}
        vault_env = self._env(
            "vault",
            "vault",
            VAULT_LISTEN=self.vault_addr,
            ENCRYPTION_KEY=self.config.encryption_key,
            VAULT_KEYRING_FILE=str(self.vault_keyring_file),
            VAULT_AUDIT_FILE=str(self.vault_audit_file),
            METRICS_PORT=str(self._metrics_port("vault")),
        )
        if not self.vault_keyring_file.exists():
            # The vault never creates its keyring by itself: the first run makes it, explicitly, once.
            subprocess.run(
                [sys.executable, "-m", "tgm.services.vault", "init"],
                cwd=REPO_ROOT,
                env=vault_env,
                check=True,
                capture_output=True,
                timeout=60,
            )
        self._spawn("vault", ["-m", "tgm.services.vault", "serve"], vault_env)
        operator = self.certs["operator"]
        self._wait(lambda: wait_until_serving(self.vault_addr, 1.0, tls=operator, server_name="vault"), "the vault")
        self._spawn(
            "botregistry",
            ["-m", "tgm.services.botregistry", "serve"],
            self._env(
                "botregistry",
                "botregistry",
                REGISTRY_LISTEN=self.registry_addr,
                DB_URL=self.db_url,
                VAULT_ADDR=self.vault_addr,
                TELEGRAM_API_BASE_URL=self.emulator_url,
                WEBHOOK_BASE_URL=self.config.webhook_base_url or self.gateway_url,
                METRICS_PORT=str(self._metrics_port("botregistry")),
                **manager_env,
            ),
        )
        self._wait(
            lambda: wait_until_serving(self.registry_addr, 1.0, tls=operator, server_name="botregistry"),
            "the bot registry",
        )
        common = {
            "REGISTRY_ADDR": self.registry_addr,
            "VAULT_ADDR": self.vault_addr,
            "TELEGRAM_API_BASE_URL": self.emulator_url,
        }
        gateway_env = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(self.gateway_port)}
        if self.embedded:
            self._spawn(
                "embedded",
                ["-m", "tgm.apps.embedded"],
                self._env(
                    "embedded",
                    "embedded",
                    **common,
                    **gateway_env,
                    DISPATCHER_THREADS=str(self.config.dispatcher_threads),
                    CALLBACK_SIGNING_KEY=self.callback_signing_key,
                ),
            )
        else:
            self._spawn(
                "gateway",
                ["-m", "tgm.services.gateway", "serve"],
                self._env(
                    "gateway",
                    "gateway",
                    REGISTRY_ADDR=self.registry_addr,
                    VAULT_ADDR=self.vault_addr,
                    REDIS_URL=self.config.redis_urls.get("gateway", self.config.redis_url),
                    ENVELOPE_SIGNING_KEY=self.envelope_signing_key,
                    **gateway_env,
                ),
            )
            for index in range(self.config.dispatcher_processes):
                self._spawn(
                    f"dispatcher-{index}",
                    ["-m", "tgm.services.dispatcher", "serve"],
                    self._env(
                        "dispatcher",
                        "dispatcher",
                        **common,
                        REDIS_URL=self.config.redis_urls.get("dispatcher", self.config.redis_url),
                        ENVELOPE_SIGNING_KEY=self.envelope_signing_key,
                        DISPATCHER_THREADS=str(self.config.dispatcher_threads),
                        CALLBACK_SIGNING_KEY=self.callback_signing_key,
                        METRICS_PORT=str(self._metrics_port(f"dispatcher-{index}")),
                    ),
                )
        self._wait(http_ok(f"{self.gateway_url}/readyz"), "the gateway")
        self._describe()

    def _describe(self) -> None:
        """`run_dir/stack.json`: each component's readiness probe, for `tgm health`."""
        probes = {"gateway": f"{self.gateway_url}/readyz"}
        probes.update({name: f"http://127.0.0.1:{port}/readyz" for name, port in self.metrics_ports.items()})
        if self.emulator_url and not self.config.telegram_api_base_url:
            probes["telegram"] = f"{self.emulator_url}/_emulator/health"
        (self.config.run_dir / "stack.json").write_text(json.dumps({"probes": probes}, indent=1))

    def _metrics_port(self, name: str) -> int:
        """The process's metrics port, the same across restarts."""
        return self.metrics_ports.setdefault(name, free_port())

    def metrics_url(self, name: str) -> str:
        """`/metrics` of a process: the gateway's own port, else its metrics port."""
        if name == "gateway":
            return f"{self.gateway_url}/metrics"
        return f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in reversed(self.processes):
            try:
                process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()

    def log_text(self) -> str:
        return "\n".join(p.log_path.read_text(errors="replace") for p in self.processes if p.log_path.exists())
