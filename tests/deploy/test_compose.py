"""docker-compose.yml would start on a Linux host: Debian's docker-compose accepts it, every tgm container runs as
the image's uid 10001 on a read-only root, each service reads its certificates from a volume a copy step filled for
10001 (the `make certs` folders stay the host user's), and the vault's keyring and the database schema are made by
their own steps before the services start."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tgm.tools.devstack.certs import ensure_certs, install_identity, main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
TGM_IMAGE = "tgm:local"
UID = "10001"
GRPC_SERVICES = ("vault", "botregistry", "gateway", "dispatcher")
# What `docker-compose config` needs set (the file refuses to start without each).
REQUIRED_ENV = {
    name: "x"
    for name in (
        "ENCRYPTION_KEY", "POSTGRES_PASSWORD", "TGM_DB_MIGRATOR_PASSWORD", "TGM_DB_APP_PASSWORD",
        "REDIS_ADMIN_PASSWORD", "REDIS_GATEWAY_PASSWORD", "REDIS_DISPATCHER_PASSWORD", "REDIS_MONITOR_PASSWORD",
        "ENVELOPE_SIGNING_KEY", "CALLBACK_SIGNING_KEY", "MANAGER_BOT_TOKEN", "GRAFANA_ADMIN_PASSWORD",
    )
} | {"TGM_PUBLIC_HOST": "tgm.example.org"}  # fmt: skip


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def _resolved(env: dict[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with exactly `env` (an empty env file: a developer's .env plays no part)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose not found: run scripts/install-system-deps.sh"
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_ENV and not k.startswith("COMPOSE_")}
    env_file.write_text("")
    return subprocess.run(
        [binary, "--env-file", str(env_file), "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_accepts_the_file_and_names_what_is_missing(tmp_path: Path) -> None:
    """The real tool: schema, merges, interpolation. Without a required secret it refuses, naming it."""
    ok = _resolved(REQUIRED_ENV, tmp_path / "empty.env")
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)["services"]
    assert set(resolved) == set(_services())
    missing = _resolved({k: v for k, v in REQUIRED_ENV.items() if k != "TGM_DB_APP_PASSWORD"}, tmp_path / "empty.env")
    assert missing.returncode != 0 and "TGM_DB_APP_PASSWORD" in missing.stderr
    # Every tgm container as docker-compose resolved it (anchors and merges applied by the tool itself).
    for name, spec in resolved.items():
        if spec.get("image") != TGM_IMAGE:
            continue
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in spec["security_opt"], name
        if name.endswith("-certs") or name == "redis-acl":
            # The copy steps (and the Redis ACL file's) alone are root, with no network and only what chown/chmod
            # into the volume needs.
            assert spec["user"] == "0:0" and spec["network_mode"] == "none", name
            assert sorted(spec["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"], name
        else:
            assert "user" not in spec and "cap_add" not in spec, name  # the image's USER: 10001


def test_the_image_runs_as_10001_and_owns_the_folders_volumes_are_mounted_on() -> None:
    """A fresh named volume copies the owner and mode of the image's folder it is mounted on: /vault-data and
    /certs must exist in the image as 10001, 0700, or the vault (10001) could not write its keyring."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)\s*$", dockerfile, re.MULTILINE)
    assert users[-1:] == [f"{UID}:{UID}"]
    made = re.search(r"install -d -o (\d+) -g (\d+) -m (\d+) ([^\n\\]+)", dockerfile)
    assert made is not None and made.group(1, 2, 3) == (UID, UID, "0700")
    image_folders = set(made.group(4).split())
    services = _services()
    for name, spec in services.items():
        if spec.get("image") != TGM_IMAGE:
            continue
        for mount in spec.get("volumes", []):
            source, target = str(mount).split(":")[:2]
            if not source.startswith(".") and name != "redis-acl":  # a named volume of a tgm service
                assert target in image_folders, (name, mount)
    assert "vault_data:/vault-data" in services["vault"]["volumes"]
    assert services["vault"]["environment"]["VAULT_KEYRING_FILE"].startswith("/vault-data/")


def test_the_vault_starts_after_its_keyring_step_and_the_registry_after_the_migration() -> None:
    services = _services()
    init = services["vault-init"]
    assert init["command"] == ["python", "-m", "tgm.services.vault", "init", "--once"]
    assert init["volumes"] == ["vault_data:/vault-data"] and init["network_mode"] == "none"
    for variable in ("VAULT_KEYRING_FILE", "VAULT_AUDIT_FILE"):
        assert init["environment"][variable] == services["vault"]["environment"][variable], variable
    completed = {"condition": "service_completed_successfully"}
    assert services["vault"]["depends_on"]["vault-init"] == completed
    for name in GRPC_SERVICES:
        assert services[name]["depends_on"][f"{name}-certs"] == completed, name
    assert services["botregistry"]["depends_on"]["botregistry-migrate"] == completed
    assert services["botregistry-migrate"]["command"][-1] == "migrate"
    assert "tgm_migrator:" in services["botregistry-migrate"]["environment"]["DB_URL"]
    assert "tgm_app:" in services["botregistry"]["environment"]["DB_URL"]
    postgres = services["postgres"]
    assert "POSTGRES_USER" not in postgres["environment"]  # the image's superuser stays "postgres", unused by tgm
    assert "./deploy/postgres/initdb:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    assert os.access(ROOT / "deploy/postgres/initdb/10-tgm-roles.sh", os.X_OK)  # the image runs it, not sources it


def _caddy_handlers(routes: list[dict[str, Any]], matches: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """Every handler of Caddy's adapted JSON config with the matchers on the way to it (subroutes flattened)."""
    found = []
    for route in routes:
        route_matches = (*matches, *route.get("match", []))
        for handler in route.get("handle", []):
            if handler["handler"] == "subroute":
                found += _caddy_handlers(handler["routes"], route_matches)
            else:
                found.append((route_matches, handler))
    return found


def test_only_the_tls_proxy_is_published_and_it_forwards_webhook_calls_only() -> None:
    """Caddy itself reads deploy/caddy/Caddyfile (`caddy adapt --validate`, offline): one upstream, the gateway's
    port, reached only by POST /webhook/* on the public host; everything else is answered by Caddy."""
    services = _services()
    published = {name for name, spec in services.items() if any(not str(p).startswith("127.0.0.1:") for p in
                 spec.get("ports", []))}  # fmt: skip
    assert published == {"proxy"} and "443:443" in services["proxy"]["ports"]
    assert "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    assert services["botregistry"]["environment"]["WEBHOOK_BASE_URL"].startswith("https://${TGM_PUBLIC_HOST")
    caddy = shutil.which("caddy")
    assert caddy, "caddy not found: run scripts/install-system-deps.sh"
    adapted = subprocess.run(
        [caddy, "adapt", "--config", str(ROOT / "deploy/caddy/Caddyfile"), "--adapter", "caddyfile", "--validate"],
        env=os.environ | {"TGM_PUBLIC_HOST": "tgm.example.org"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert adapted.returncode == 0, adapted.stderr
    (server,) = json.loads(adapted.stdout)["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    handlers = _caddy_handlers(server["routes"])
    proxies = [(matches, handler) for matches, handler in handlers if handler["handler"] == "reverse_proxy"]
    gateway_port = services["gateway"]["environment"]["GATEWAY_PORT"]
    assert [handler["upstreams"] for _, handler in proxies] == [[{"dial": f"gateway:{gateway_port}"}]]
    assert list(proxies[0][0]) == [{"host": ["tgm.example.org"]}, {"method": ["POST"], "path": ["/webhook/*"]}]


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mode & 0o777 for path in [folder, *folder.iterdir()]}


def test_the_certs_step_copies_one_identity_for_the_service_uid(tmp_path: Path) -> None:
    """The command the compose file runs, on real `make certs` output: folder 0700, key 0600, owned by the uid given
    (10001 when these tests run as root, as CI does; this user's own uid otherwise)."""
    files = ensure_certs(tmp_path / "certs")
    uid = int(UID) if os.geteuid() == 0 else os.getuid()
    gid = int(UID) if os.geteuid() == 0 else os.getgid()
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "old.key").write_text("from a previous identity")
    command = _services()["gateway-certs"]["command"]
    assert command[:4] == ["python", "-m", "tgm.tools.devstack.certs", "install"]
    args = [{"/from": str(tmp_path / "certs/gateway"), "/certs": str(volume)}.get(a, a) for a in command[3:]]
    args[args.index("--owner") + 1] = f"{uid}:{gid}"
    assert main(args) == 0
    assert _modes(volume) == {"volume": 0o700, "gateway.key": 0o600, "gateway.pem": 0o644, "ca.pem": 0o644}
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [volume, *volume.iterdir()]} == {(uid, gid)}
    assert (volume / "gateway.key").read_bytes() == files["gateway"].key_file.read_bytes()
    assert (volume / "ca.pem").read_bytes() == files["gateway"].ca_file.read_bytes()


def test_the_certs_step_changes_nothing_when_a_file_is_missing(tmp_path: Path) -> None:
    ensure_certs(tmp_path / "certs")
    volume = tmp_path / "volume"
    install_identity(tmp_path / "certs/vault", volume, "vault", os.getuid(), os.getgid())
    before = {p.name: p.read_bytes() for p in volume.iterdir()}
    (tmp_path / "certs/vault/ca.pem").unlink()
    with pytest.raises(FileNotFoundError):
        install_identity(tmp_path / "certs/vault", volume, "vault", os.getuid(), os.getgid())
    assert {p.name: p.read_bytes() for p in volume.iterdir()} == before
