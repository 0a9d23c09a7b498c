"""docker-compose.yml hands each service its own certificate folder and nothing else (docs/adr/003-vault-mtls.md).

The venv has no YAML library, so this reads the file's block structure directly: top-level sections, the
service blocks under ``services:`` (two-space indent) and every line inside them. That is enough for the
question asked — which paths under ./.run/certs does each container see — and it fails closed: any mention of
the certs folder outside a service block (e.g. in a merged ``x-`` anchor) fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

from tools.devstack.certs import CA_DIR, IDENTITIES, ensure_certs

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
CERTS_MOUNT = re.compile(r"\./\.run/certs(?P<sub>/[^:\"'\s\]]*)?:(?P<target>[^:\"'\s\]]+)(?::ro)?")
TLS_VAR = re.compile(r"^\s+(TLS_CA_FILE|TLS_CERT_FILE|TLS_KEY_FILE):\s*(\S+)\s*$")
GRPC_SERVICES = {"vault", "botregistry", "gateway", "dispatcher"}


def _blocks(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """(service name → its lines, lines outside any service block); comments dropped."""
    services: dict[str, list[str]] = {}
    outside: list[str] = []
    section = ""
    current: str | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line.startswith(" "):
            section, current = line.rstrip(":"), None
            outside.append(line)
            continue
        service = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if section == "services" and service:
            current = service.group(1)
            services[current] = []
        elif section == "services" and current is not None:
            services[current].append(line)
        else:
            outside.append(line)
    return services, outside


def test_each_service_mounts_only_its_own_certificate_folder() -> None:
    services, outside = _blocks(COMPOSE.read_text())
    assert set(services) >= GRPC_SERVICES
    assert not [line for line in outside if ".run/certs" in line or "/certs" in line], "certs outside a service"
    identities = {identity.name for identity in IDENTITIES}
    for name, lines in services.items():
        mounts = [match for line in lines for match in CERTS_MOUNT.finditer(line)]
        if name not in GRPC_SERVICES:
            assert mounts == [], name
            continue
        assert [(m.group("sub"), m.group("target")) for m in mounts] == [(f"/{name}", "/certs")], name
        assert all(line.rstrip().endswith(":ro") or ":ro" in line for line in lines if ".run/certs" in line)
        env = dict(match.groups() for line in lines if (match := TLS_VAR.match(line)))
        assert env == {
            "TLS_CA_FILE": "/certs/ca.pem",
            "TLS_CERT_FILE": f"/certs/{name}.pem",
            "TLS_KEY_FILE": f"/certs/{name}.key",
        }, name
        # Nothing in the block names another identity's folder, the CA key folder or the operator.
        for other in (identities - {name}) | {CA_DIR}:
            names_other = re.compile(rf"certs/{re.escape(other)}(?:[/:\"'\s\]]|$)|/{re.escape(other)}\.key")
            assert not [line for line in lines if names_other.search(line)], (name, other)


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
        expected_dns = [name] if name in {"vault", "botregistry"} else []
        assert sans.value.get_values_for_type(x509.DNSName) == expected_dns
    assert ensure_certs(out) == files  # idempotent
