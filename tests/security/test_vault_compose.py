"""docker-compose.yml hands each service its own certificate folder and its own secrets, and nothing else.

(docs/adr/003-vault-mtls.md; DESIGN.md §4: each service gets only its secrets.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tgm.tools.devstack.certs import CA_DIR, IDENTITIES, ensure_certs

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
GRPC_SERVICES = {"vault", "botregistry", "gateway", "dispatcher"}
# Each secret and the services allowed to receive it (`vault-init`, the vault's own step, makes the keyring from
# ENCRYPTION_KEY; the serving vault reads the keyring).
SECRET_OWNERS = {
    "ENCRYPTION_KEY": {"vault-init"},
    "MANAGER_BOT_TOKEN": {"botregistry"},
    "CALLBACK_SIGNING_KEY": {"dispatcher"},
    "ENVELOPE_SIGNING_KEY": {"gateway", "dispatcher"},
    "REDIS_ADMIN_PASSWORD": {"redis-acl"},
    "REDIS_MONITOR_PASSWORD": {"redis-acl"},
}
# Database passwords, which reach services inside URLs: each only where its role is used (and the postgres init).
DATABASE_PASSWORDS = {
    "POSTGRES_PASSWORD": {"postgres"},
    "TGM_DB_MIGRATOR_PASSWORD": {"postgres", "botregistry-migrate"},
    "TGM_DB_APP_PASSWORD": {"postgres", "botregistry"},
    # ... and the Redis users' (the gateway's and the dispatchers' inside their REDIS_URL), Grafana's admin.
    "REDIS_GATEWAY_PASSWORD": {"redis-acl", "gateway"},
    "REDIS_DISPATCHER_PASSWORD": {"redis-acl", "dispatcher"},
    "REDIS_ADMIN_PASSWORD": {"redis-acl"},
    "REDIS_MONITOR_PASSWORD": {"redis-acl"},
    "GRAFANA_ADMIN_PASSWORD": {"grafana"},
}


def _services() -> dict[str, Any]:
    # safe_load resolves the `<<: *common` merges, so anchors cannot smuggle a mount in unseen.
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_each_service_mounts_only_its_own_certificate_folder() -> None:
    """`make certs` folders reach a service only through its own one-shot `<name>-certs` copy step, which mounts
    that one folder read-only and writes only the service's volume; the service mounts that volume read-only."""
    services = _services()
    assert set(services) >= GRPC_SERVICES | {f"{name}-certs" for name in GRPC_SERVICES}
    identities = {identity.name for identity in IDENTITIES}
    for name, spec in services.items():
        mounts = [str(v) for v in spec.get("volumes", [])]
        cert_mounts = [v for v in mounts if ".run/certs" in v or v.split(":")[0].endswith("_certs")]
        owner = name.removesuffix("-certs")
        if name in GRPC_SERVICES:
            assert cert_mounts == [f"{name}_certs:/certs:ro"], name
            env = spec["environment"]
            assert {k: env[k] for k in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")} == {
                "TLS_CA_FILE": "/certs/ca.pem",
                "TLS_CERT_FILE": f"/certs/{name}.pem",
                "TLS_KEY_FILE": f"/certs/{name}.key",
            }, name
        elif name == "redis":  # its server certificate, for the services' TLS connections (test_redis_acl.py)
            assert cert_mounts == ["redis_certs:/certs:ro"], name
        elif name.endswith("-certs") and owner in GRPC_SERVICES | {"redis"}:
            assert cert_mounts == [f"./.run/certs/{owner}:/from:ro", f"{owner}_certs:/certs"], name
            assert spec["network_mode"] == "none", name
        else:
            assert cert_mounts == [], name
            continue
        text = yaml.safe_dump(spec)
        for other in (identities - {owner}) | {CA_DIR}:
            assert not re.search(
                rf"certs/{re.escape(other)}(?:[/:\"'\s\]]|$)|/{re.escape(other)}\.key|\b{re.escape(other)}_certs", text
            ), (name, other)


def test_each_secret_reaches_only_its_service() -> None:
    for name, spec in _services().items():
        env = spec.get("environment") or {}
        for secret, owners in SECRET_OWNERS.items():
            assert (secret in env) == (name in owners), (name, secret)
        text = yaml.safe_dump(spec)
        for password, owners in DATABASE_PASSWORDS.items():
            assert (f"${{{password}:" in text) == (name in owners), (name, password)


def test_ensure_certs_writes_one_private_folder_per_identity(tmp_path: Path) -> None:
    from cryptography import x509

    out = tmp_path / "certs"
    files = ensure_certs(out)
    assert set(files) == {identity.name for identity in IDENTITIES}
    assert sorted(p.name for p in (out / CA_DIR).iterdir()) == ["ca.key", "ca.pem"]
    for name, tls in files.items():
        folder = out / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(["ca.pem", f"{name}.pem", f"{name}.key"])
        assert (tls.ca_file, tls.cert_file, tls.key_file) == (
            folder / "ca.pem",
            folder / f"{name}.pem",
            folder / f"{name}.key",
        )
        assert folder.stat().st_mode & 0o777 == 0o700 and tls.key_file.stat().st_mode & 0o777 == 0o600
        assert tls.ca_file.read_bytes() == (out / CA_DIR / "ca.pem").read_bytes()
        sans = x509.load_pem_x509_certificate(tls.cert_file.read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://tgm/{name}"]
        assert sans.value.get_values_for_type(x509.IPAddress) == []  # no loopback identities
        expected_dns = [name] if name in {"vault", "botregistry", "redis"} else []
        assert sans.value.get_values_for_type(x509.DNSName) == expected_dns
    assert ensure_certs(out) == files  # idempotent
