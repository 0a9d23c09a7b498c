"""Fail closed (issue 11, blocker 1): no gRPC server or client runs without mutual TLS unless the explicit
development flag says so — the registry used to serve every caller unauthenticated when TLS_* was forgotten."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgm.grpc_runtime.channels import open_channel
from tgm.grpc_runtime.tls import TlsConfigError, required_tls_from_env

REPO = Path(__file__).resolve().parents[2]


def test_no_tls_and_no_flag_is_a_configuration_error() -> None:
    with pytest.raises(TlsConfigError, match="mutual TLS is required"):
        required_tls_from_env({})
    assert required_tls_from_env({"TGM_INSECURE_DEV": "1"}) is None
    with pytest.raises(TlsConfigError):
        required_tls_from_env({"TGM_INSECURE_DEV": "yes please"})  # only the exact flag value counts


def test_a_channel_from_the_environment_refuses_plaintext_without_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TGM_INSECURE_DEV", raising=False)
    for name in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TlsConfigError):
        open_channel("127.0.0.1:1")
    open_channel("127.0.0.1:1", tls=None).close()  # an explicit in-process choice stays possible


@pytest.mark.parametrize(
    "module",
    ["tgm.services.botregistry", "tgm.services.gateway", "tgm.services.dispatcher", "tgm.apps.embedded"],
)
def test_each_service_refuses_to_start_without_tls(module: str, tmp_path: Path) -> None:
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        DB_URL=f"sqlite:///{tmp_path / 'registry.db'}",
        REDIS_URL="redis://127.0.0.1:1/0",
        CALLBACK_SIGNING_KEY="x" * 40,
    )
    args = [sys.executable, "-m", module] + ([] if module == "tgm.apps.embedded" else ["serve"])
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to start" in done.stderr and "mutual TLS is required" in done.stderr
    assert not (tmp_path / "registry.db").exists(), "the registry must refuse before touching its database"


@pytest.mark.parametrize("module", ["tgm.services.gateway", "tgm.services.dispatcher"])
def test_on_redis_gateway_and_dispatcher_refuse_to_start_without_the_envelope_key(module: str, tmp_path: Path) -> None:
    """Issue 11, item 5: without ENVELOPE_SIGNING_KEY anyone who reaches Redis could forge updates."""
    from tgm.grpc_runtime.tls import tls_env
    from tgm.tools.devstack.certs import ensure_certs

    certs = ensure_certs(tmp_path / "certs")
    service = "gateway" if module == "tgm.services.gateway" else "dispatcher"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(PYTHONPATH=str(REPO / "src"), REDIS_URL="redis://127.0.0.1:1/0", CALLBACK_SIGNING_KEY="x" * 40)
    env.update(tls_env(certs[service]))
    args = [sys.executable, "-m", module, "serve"]
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "ENVELOPE_SIGNING_KEY is required" in done.stderr
    env["ENVELOPE_SIGNING_KEY"] = "too-short"
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "at least 32 bytes" in done.stderr, done.stderr[-2000:]
