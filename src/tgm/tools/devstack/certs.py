"""A local CA and one certificate per tgm process, for mutual TLS (docs/adr/003-vault-mtls.md).

    python -m tgm.tools.devstack.certs --out .run/certs      # `make certs`; idempotent
    python -m tgm.tools.devstack.certs install --source DIR --target DIR --identity NAME --owner UID:GID

Layout (one folder per identity, so a deployment mounts each service's folder and nothing else)::

    <out>/ca/ca.pem, ca.key                      # the CA; ca.key is never handed to any service
    <out>/<name>/ca.pem, <name>.pem, <name>.key  # what process <name> gets (TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE)

Folders are 0700, private keys 0600. Each certificate names its identity twice: subject CN ``<name>`` and SAN URI
``spiffe://tgm/<name>``; the vault authorizes on the SAN URI. Server certificates carry only their own service
name as DNS SAN (``vault``, ``botregistry``) — no localhost/loopback IPs — and clients check that name
(``open_channel(..., server_name=...)``), so one service's certificate cannot impersonate another.
ECDSA P-256 (gRPC's TLS has no Ed25519).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tgm.grpc_runtime.tls import TlsFiles
from tgm.host.files import private_dir

SPIFFE_PREFIX = "spiffe://tgm/"
CA_DIR = "ca"


@dataclass(frozen=True)
class Identity:
    name: str
    server: bool
    client: bool
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()  # only for a test server reached by address (a Redis on loopback): never tgm's services


# gateway+dispatcher in one process (tgm.apps.embedded) is its own identity: the union of both grants.
IDENTITIES = (
    Identity("vault", server=True, client=False, dns=("vault",)),
    Identity("botregistry", server=True, client=True, dns=("botregistry",)),
    Identity("gateway", server=False, client=True),
    Identity("dispatcher", server=False, client=True),
    Identity("embedded", server=False, client=True),
    Identity("operator", server=False, client=True),
    Identity("redis", server=True, client=False, dns=("redis",)),  # docker-compose's Redis: TLS with this CA
)


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common_name: str = "tgm local CA", days: int = 3650) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)


def issue(ca: CertificateAuthority, identity: Identity, days: int = 825) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for `identity`, signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SPIFFE_PREFIX + identity.name)]
    if identity.server:
        sans += [x509.DNSName(name) for name in identity.dns]
        sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in identity.ips]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if identity.server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if identity.client else []
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )  # digital_signature
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_identity(ca: CertificateAuthority, identity: Identity, out: Path) -> TlsFiles:
    """Writes ``out/<name>/{ca.pem,<name>.pem,<name>.key}``: everything `identity` needs, nothing more."""
    folder = private_dir(out / identity.name)
    cert_pem, key_pem = issue(ca, identity)
    files = identity_files(out, identity.name)
    _write_private(files.key_file, key_pem)
    files.cert_file.write_bytes(cert_pem)
    (folder / "ca.pem").write_bytes(_pem(ca.cert))
    return files


def identity_files(out: Path, name: str) -> TlsFiles:
    return folder_files(out / name, name)


def folder_files(folder: Path, name: str) -> TlsFiles:
    """Identity `name`'s three files in its own folder (``<out>/<name>``, or wherever a deployment mounts it)."""
    return TlsFiles(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")


def _load_or_make_ca(out: Path) -> tuple[CertificateAuthority, bool]:
    folder = private_dir(out / CA_DIR)
    ca_file, ca_key_file = folder / "ca.pem", folder / "ca.key"
    if ca_file.exists() and ca_key_file.exists():
        ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        return CertificateAuthority(ca_key, x509.load_pem_x509_certificate(ca_file.read_bytes())), False
    ca = make_ca()
    _write_private(ca_key_file, _key_pem(ca.key))
    ca_file.write_bytes(_pem(ca.cert))
    return ca, True


def ensure_certs(out: Path, identities: tuple[Identity, ...] = IDENTITIES) -> dict[str, TlsFiles]:
    """Creates the CA and every missing identity folder under `out` (idempotent); returns name → files.

    An identity whose folder is incomplete, or whose ``ca.pem`` is not the current CA, is re-issued.
    """
    if any(identity.name == CA_DIR for identity in identities):
        raise ValueError(f"{CA_DIR!r} is reserved for the CA folder")
    private_dir(out)
    ca, fresh = _load_or_make_ca(out)
    ca_pem = _pem(ca.cert)
    files: dict[str, TlsFiles] = {}
    for identity in identities:
        existing = identity_files(out, identity.name)
        complete = all(path.exists() for path in (existing.ca_file, existing.cert_file, existing.key_file))
        if not fresh and complete and existing.ca_file.read_bytes() == ca_pem:
            files[identity.name] = existing
        else:
            files[identity.name] = write_identity(ca, identity, out)
    return files


def install_identity(source: Path, target: Path, name: str, uid: int, gid: int) -> TlsFiles:
    """Copies identity `name`'s three files from its folder `source` (``<out>/<name>``) into `target`, owned by
    uid:gid: the folder 0700, the key 0600, the certificates 0644. For docker-compose, whose bind mounts keep the
    host user's owner and modes: the service's uid (10001) could not read a 0600 key the host user owns, so a
    one-shot step copies it into the service's own volume (docker-compose.yml). Needs root (chown) unless uid is
    the caller's. Any other file in `target` is removed."""
    files, wanted = folder_files(source, name), folder_files(target, name)
    contents = [  # all read first: a missing source file changes nothing in `target`
        (files.key_file.read_bytes(), wanted.key_file, 0o600),
        (files.cert_file.read_bytes(), wanted.cert_file, 0o644),
        (files.ca_file.read_bytes(), wanted.ca_file, 0o644),
    ]
    target.mkdir(parents=True, exist_ok=True)
    os.chown(target, uid, gid)
    os.chmod(target, 0o700)
    for data, dest, mode in contents:
        partial = dest.with_name(dest.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not briefly
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chown(partial, uid, gid)
        os.chmod(partial, mode)
        os.replace(partial, dest)
    for other in set(target.iterdir()) - {wanted.ca_file, wanted.cert_file, wanted.key_file}:
        if other.is_file():
            other.unlink()  # e.g. an identity's files from before: the volume holds this identity's only
    return wanted


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    return int(uid), int(gid or uid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tgm.tools.devstack.certs", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".run/certs"))
    sub = parser.add_subparsers(dest="command")
    install = sub.add_parser("install", help="copy one identity's files into a folder owned by UID:GID")
    install.add_argument("--source", type=Path, required=True, help="the identity's folder as `make certs` wrote it")
    install.add_argument("--target", type=Path, required=True)
    install.add_argument("--identity", required=True, choices=[identity.name for identity in IDENTITIES])
    install.add_argument("--owner", type=_owner, required=True, metavar="UID[:GID]")
    args = parser.parse_args(argv)
    if args.command == "install":
        uid, gid = args.owner
        installed = install_identity(args.source, args.target, args.identity, uid, gid)
        print(f"{args.identity}: installed into {installed.cert_file.parent} for {uid}:{gid}")
        return 0
    files = ensure_certs(args.out)
    for name, tls in files.items():
        print(f"{name}: TLS_CA_FILE={tls.ca_file} TLS_CERT_FILE={tls.cert_file} TLS_KEY_FILE={tls.key_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
