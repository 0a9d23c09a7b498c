"""docker-compose.yml hands each service its own certificate folder and its own secrets, and nothing else.

(docs/adr/003-vault-mtls.md; DESIGN.md §4: each service gets only its secrets.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tools.devstack.certs import CA_DIR, IDENTITIES, ensure_certs

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
GRPC_SERVICES = {"vault", "botregistry", "gateway", "dispatcher"}
# Each secret and the one service allowed to receive it.
SECRET_OWNERS = {"ENCRYPTION_KEY": "vault", "MANAGER_BOT_TOKEN": "botregistry", "CALLBACK_SIGNING_KEY": "dispatcher"}


def _services() -> dict[str, Any]:
    # safe_load resolves the `<<: *common` merges, so anchors cannot smuggle a mount in unseen.
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_each_service_mounts_only_its_own_certificate_folder() -> None:
    services = _services()
    assert set(services) >= GRPC_SERVICES
    identities = {identity.name for identity in IDENTITIES}
    for name, spec in services.items():
        cert_mounts = [v for v in spec.get("volumes", []) if ".run/certs" in v]
        if name == "redis":  # its server certificate, for the services' TLS connections (test_redis_acl.py)
            assert cert_mounts == ["./.run/certs/redis:/certs:ro"]
            continue
        if name not in GRPC_SERVICES:
            assert cert_mounts == [], name
            continue
        assert cert_mounts == [f"./.run/certs/{name}:/certs:ro"], name
        env = spec["environment"]
        assert {k: env[k] for k in ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")} == {
            "TLS_CA_FILE": "/certs/ca.pem",
            "TLS_CERT_FILE": f"/certs/{name}.pem",
            "TLS_KEY_FILE": f"/certs/{name}.key",
        }, name
        text = yaml.safe_dump(spec)
        for other in (identities - {name}) | {CA_DIR}:
            assert not re.search(rf"certs/{re.escape(other)}(?:[/:\"'\s\]]|$)|/{re.escape(other)}\.key", text), (
                name,
                other,
            )


def test_each_secret_reaches_only_its_service() -> None:
    for name, spec in _services().items():
        env = spec.get("environment") or {}
        for secret, owner in SECRET_OWNERS.items():
            assert (secret in env) == (name == owner), (name, secret)


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
