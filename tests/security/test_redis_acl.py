"""SECURITY.md finding 5: one least-privilege Redis user per service, TLS, and services that refuse a Redis URL
without their own credentials. The Redis-mode end-to-end stacks prove the rules are enough (an ACL denial fails
the run: tests/conftest.py); these prove they are tight."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from testbed.redis_server import RedisServer, start_redis, stop_redis
from tgm.domain.updates import UpdateEnvelope
from tgm.messaging.mailbox import drain_pending_key, mailbox_key
from tgm.messaging.redis_acl import SERVICE_RULES, redis_url_problem, server_arguments, user_rule
from tgm.messaging.update_queue import RedisUpdateQueue

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A Redis of its own: these tests make Redis refuse commands, which the session Redis treats as a failure."""
    started, process, workdir = start_redis()
    try:
        yield started
    finally:
        stop_redis(process, workdir)


def client(server: RedisServer, user: str) -> redis.Redis:
    return redis.Redis.from_url(server.service_url(user))


def refused(call: object, *args: object) -> bool:
    """True when Redis refused it for the user's ACL (at the top level, or inside a script)."""
    try:
        call(*args)  # type: ignore[operator]
    except redis.exceptions.NoPermissionError:
        return True
    except redis.exceptions.ResponseError as exc:
        return "user executing the script can't run" in str(exc)
    return False


def test_a_client_without_credentials_gets_nothing(server: RedisServer) -> None:
    anonymous = redis.Redis(host=server.host, port=server.port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.get("tgm:anything")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(server.service_url("gateway").replace("gateway:", "gateway:wrong", 1)).ping()


def test_the_gateway_can_store_an_update_and_nothing_else(server: RedisServer) -> None:
    import redis.asyncio

    admin = redis.Redis.from_url(server.url)
    admin.set("tgm:obox-sent:x", "1")
    update = {"update_id": 7, "message": {"message_id": 1, "chat": {"id": 42, "type": "private"}, "text": "hi"}}
    envelope = UpdateEnvelope(bot_id="b1", update_id=7, received_at=0.0, request_id="r1", update=update)

    async def store() -> bool:
        gateway_async = redis.asyncio.Redis.from_url(server.service_url("gateway"))
        try:
            return await RedisUpdateQueue(gateway_async).enqueue(envelope)
        finally:
            await gateway_async.aclose()

    assert asyncio.run(store())
    assert admin.llen(mailbox_key("b1", "42")) == 1 and admin.exists(drain_pending_key("b1", "42"))
    assert admin.llen("dramatiq:updates") == 1

    gateway = client(server, "gateway")
    assert refused(gateway.lrange, mailbox_key("b1", "42"), 0, -1)  # it writes mailboxes, never reads them
    assert refused(gateway.get, "tgm:obox-sent:x")
    assert refused(gateway.set, "tgm:lock:b1:42", "mine")
    assert refused(gateway.rpush, "dramatiq:outbox", "forged")
    assert refused(gateway.eval, "return redis.call('GET', KEYS[1])", 1, mailbox_key("b1", "42"))
    assert refused(gateway.flushall)
    assert refused(gateway.config_get, "requirepass")


def test_the_dispatcher_works_on_tgm_keys_but_cannot_administer_redis(server: RedisServer) -> None:
    dispatcher = client(server, "dispatcher")
    assert dispatcher.set("tgm:lock:b1:42", "worker-1", nx=True, px=1000)
    assert dispatcher.eval("return redis.call('GET', KEYS[1])", 1, "tgm:lock:b1:42") == b"worker-1"
    assert dispatcher.publish("tgm:bots:changed", "b1") == 0
    assert refused(dispatcher.set, "other-app:key", "x")
    for command in (dispatcher.flushall, dispatcher.flushdb, dispatcher.acl_list):
        assert refused(command)
    assert refused(dispatcher.config_set, "appendonly", "no")
    assert refused(dispatcher.execute_command, "MONITOR")
    assert refused(dispatcher.execute_command, "SHUTDOWN", "NOSAVE")


def test_the_monitor_reads_but_never_writes(server: RedisServer) -> None:
    monitor = client(server, "monitor")
    redis.Redis.from_url(server.url).rpush("dramatiq:updates", "m1")
    assert monitor.llen("dramatiq:updates") >= 1
    assert refused(monitor.rpush, "dramatiq:updates", "forged")
    assert refused(monitor.delete, "dramatiq:updates")


def test_tls_refuses_a_server_the_client_does_not_trust(server: RedisServer, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from tgm.tools.devstack.certs import make_ca

    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_ca("not the Redis CA").cert.public_bytes(serialization.Encoding.PEM))
    url = server.service_url("dispatcher").replace(server.tls_ca_file.replace("/", "%2F"), str(other_ca))
    assert str(other_ca) in url
    with pytest.raises(redis.exceptions.ConnectionError) as raised:
        redis.Redis.from_url(url).ping()
    assert isinstance(raised.value.__context__, ssl.SSLError) or "certificate" in str(raised.value).lower()
    assert client(server, "dispatcher").ping()  # the right CA: the same server answers


def test_rules_need_a_password_and_a_known_user() -> None:
    with pytest.raises(ValueError, match="needs a password"):
        user_rule("gateway", "")
    with pytest.raises(ValueError, match="no ACL rules"):
        server_arguments("admin-password", {"intruder": "x" * 20})
    with pytest.raises(ValueError, match="'default' needs a password"):
        server_arguments("", {"gateway": "s3cret-password"})
    words = server_arguments("admin-password", {"gateway": "s3cret-password"})
    assert words[:4] == ["--user", "default", "reset", "on"] and "nopass" not in words
    assert "s3cret-password" not in " ".join(words)  # only SHA-256 hashes reach Redis's command line
    assert "admin-password" not in " ".join(words)
    assert set(SERVICE_RULES) == {"gateway", "dispatcher", "monitor"}


@pytest.mark.parametrize(
    ("url", "insecure_dev", "problem"),
    [
        ("redis://127.0.0.1:6379/0", False, "must name this service's Redis user and password"),
        ("redis://:only-a-password@127.0.0.1:6379/0", False, "must name this service's Redis user and password"),
        ("redis://gateway:pw@redis.internal:6379/0", False, "without TLS: use rediss://"),
        ("redis://gateway:pw@127.0.0.1:6379/0", False, None),
        ("rediss://gateway:pw@redis.internal:6380/0?ssl_ca_certs=/certs/ca.pem", False, None),
        ("rediss://gateway:pw@redis.internal:6380/0?ssl_cert_reqs=none", False, "certificate checks off"),
        ("redis://gateway:pw@127.0.0.1:6379/2", False, "database 0"),
        ("redis://redis.internal:6379/0", True, None),
    ],
)
def test_which_redis_urls_a_service_accepts(url: str, insecure_dev: bool, problem: str | None) -> None:
    found = redis_url_problem(url, insecure_dev=insecure_dev)
    assert (found is None) if problem is None else (found is not None and problem in found)
    assert found is None or "pw" not in found


@pytest.mark.parametrize("module", ["tgm.services.gateway", "tgm.services.dispatcher"])
def test_gateway_and_dispatcher_refuse_a_redis_url_without_their_user(module: str, tmp_path: Path) -> None:
    from tgm.grpc_runtime.tls import tls_env
    from tgm.tools.devstack.certs import ensure_certs

    certs = ensure_certs(tmp_path / "certs")
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    env.update(PYTHONPATH=str(REPO / "src"), REDIS_URL="redis://127.0.0.1:1/0", ENVELOPE_SIGNING_KEY="k" * 40)
    env.update(CALLBACK_SIGNING_KEY="x" * 40, **tls_env(certs[module.rsplit(".", 1)[1]]))
    done = subprocess.run(
        [sys.executable, "-m", module, "serve"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "REDIS_URL must name this service's Redis user and password" in done.stderr


def test_compose_runs_redis_tls_only_with_client_certificates_and_the_users_from_an_acl_file() -> None:
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--aclfile") + 1] == "/acl/users.acl" and "--user" not in command
    assert not any(">" in word or "PASSWORD" in word for word in command)  # no password on Redis's command line
    assert command[command.index("--port") + 1] == "0" and command[command.index("--tls-auth-clients") + 1] == "yes"
    step = compose["services"]["redis-acl"]
    variables = {"REDIS_ADMIN_PASSWORD", *(f"REDIS_{name.upper()}_PASSWORD" for name in SERVICE_RULES)}
    assert set(step["environment"]) == variables and step["network_mode"] == "none"
    assert step["command"][2:] == ["tgm.messaging.redis_acl", "--out", "/acl/users.acl", "--owner", "999:1000"]
    for service in ("gateway", "dispatcher"):
        url = compose["services"][service]["environment"]["REDIS_URL"]
        assert url.startswith(f"rediss://{service}:${{REDIS_{service.upper()}_PASSWORD:?}}@redis:")
        assert f"ssl_certfile=/certs/{service}.pem" in url
        password_variable = f"${{REDIS_{service.upper()}_PASSWORD:?}}"
        assert redis_url_problem(url.replace(password_variable, "pw"), insecure_dev=False) is None


def _redis(arguments: list[str], workdir: Path) -> subprocess.Popen[bytes]:
    from testbed.redis_server import REDIS_BINARY

    command = [REDIS_BINARY, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    return subprocess.Popen([*command, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _answers(url: str, **options: object) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            return bool(redis.Redis.from_url(url, **options).ping())
        except redis.exceptions.AuthenticationError:
            raise
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    return False


def test_the_acl_file_step_writes_hashes_that_a_real_redis_loads(tmp_path: Path) -> None:
    from testbed.redis_server import _free_port
    from tgm.messaging.redis_acl import main

    environ = {"REDIS_ADMIN_PASSWORD": "admin-secret-1", "REDIS_GATEWAY_PASSWORD": "gateway-secret-2"}
    assert main(["--out", str(tmp_path / "users.acl")], environ) == 2  # names what is missing, writes nothing
    assert not (tmp_path / "users.acl").exists()
    environ |= {"REDIS_DISPATCHER_PASSWORD": "dispatcher-secret-3", "REDIS_MONITOR_PASSWORD": "monitor-secret-4"}
    assert main(["--out", str(tmp_path / "users.acl")], environ) == 0
    text = (tmp_path / "users.acl").read_text()
    assert (tmp_path / "users.acl").stat().st_mode & 0o777 == 0o600
    assert not any(password in text for password in environ.values())
    port = _free_port()
    process = _redis(["--port", str(port), "--aclfile", str(tmp_path / "users.acl")], tmp_path)
    try:
        assert _answers(f"redis://gateway:gateway-secret-2@127.0.0.1:{port}/0")
        gateway = redis.Redis.from_url(f"redis://gateway:gateway-secret-2@127.0.0.1:{port}/0")
        assert refused(gateway.get, "tgm:obox-sent:x")
        assert redis.Redis.from_url(f"redis://default:admin-secret-1@127.0.0.1:{port}/0").acl_whoami() == "default"
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis.from_url(f"redis://gateway:admin-secret-1@127.0.0.1:{port}/0").ping()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_with_client_authentication_only_a_certificate_from_the_ca_gets_in(tmp_path: Path) -> None:
    """Compose's setting (`--tls-auth-clients yes`): the services present their own certificates."""
    from cryptography.hazmat.primitives import serialization

    from testbed.redis_server import _free_port
    from tgm.tools.devstack.certs import Identity, issue, make_ca

    ca = make_ca("test CA")
    files: dict[str, Path] = {"ca": tmp_path / "ca.pem"}
    files["ca"].write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    for identity in (Identity("redis", True, False, ("redis",), ("127.0.0.1",)), Identity("gateway", False, True)):
        cert, key = issue(ca, identity)
        (tmp_path / f"{identity.name}.pem").write_bytes(cert)
        (tmp_path / f"{identity.name}.key").write_bytes(key)
    port = _free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "yes", "--tls-ca-cert-file", str(files["ca"])]
    tls += ["--tls-cert-file", str(tmp_path / "redis.pem"), "--tls-key-file", str(tmp_path / "redis.key")]
    process = _redis([*tls, *server_arguments("admin-pw", {"gateway": "gateway-pw"})], tmp_path)
    base = f"rediss://gateway:gateway-pw@127.0.0.1:{port}/0?ssl_ca_certs={files['ca']}"
    try:
        assert _answers(f"{base}&ssl_certfile={tmp_path / 'gateway.pem'}&ssl_keyfile={tmp_path / 'gateway.key'}")
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis.from_url(base).ping()  # no client certificate: the handshake fails
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_operator_tools_work_as_their_own_users(server: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    """`tgm queue` reads as `monitor`; `dead-letters list` runs as the dispatcher's user."""
    import argparse

    from tgm.apps.cli.__main__ import queue
    from tgm.messaging.update_queue import UPDATES_QUEUE
    from tgm.services.dispatcher import dead_letters_cli

    redis.Redis.from_url(server.url).rpush(mailbox_key("b9", "7"), "x")
    assert queue(server.service_url("monitor")) == 0
    printed = capsys.readouterr().out
    assert f"queue {UPDATES_QUEUE}" in printed and mailbox_key("b9", "7") in printed
    args = argparse.Namespace(dl_command="list", limit=10)
    assert dead_letters_cli.run(args, server.service_url("dispatcher")) == 0
