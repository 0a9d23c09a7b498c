"""Mutual TLS between tgm's processes: per-process certificate files named by environment variables.

``TLS_CA_FILE`` (the local CA that signs every service certificate), ``TLS_CERT_FILE`` and ``TLS_KEY_FILE``
(this process's certificate chain and private key). All three set: every channel and server is mTLS.
None set: refused (`required_tls_from_env`: fail closed), unless the explicit development flag
``TGM_INSECURE_DEV=1`` is set, which allows plaintext with no caller identity (in-process tests, local hacking).
Anything in between is a configuration error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

TLS_ENV = ("TLS_CA_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE")
INSECURE_DEV_FLAG = "TGM_INSECURE_DEV"


class TlsConfigError(Exception):
    """Incomplete or unreadable TLS configuration; the message names variables and paths, never key bytes."""


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(ca, cert chain, private key) as PEM bytes."""
        try:
            return self.ca_file.read_bytes(), self.cert_file.read_bytes(), self.key_file.read_bytes()
        except OSError as exc:
            raise TlsConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from None

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self, require_client_auth: bool = True) -> grpc.ServerCredentials:
        ca, cert, key = self.read()
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=require_client_auth)


def tls_from_env(environ: Mapping[str, str] | None = None) -> TlsFiles | None:
    """The TLS files named by the environment, or None when none of the variables is set."""
    env = os.environ if environ is None else environ
    values = [env.get(name, "").strip() for name in TLS_ENV]
    if not any(values):
        return None
    missing = [name for name, value in zip(TLS_ENV, values, strict=True) if not value]
    if missing:
        raise TlsConfigError(f"TLS needs all of {', '.join(TLS_ENV)}; missing {', '.join(missing)}")
    return TlsFiles(Path(values[0]), Path(values[1]), Path(values[2]))


def insecure_dev_allowed(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(INSECURE_DEV_FLAG, "").strip() == "1"


def required_tls_from_env(environ: Mapping[str, str] | None = None) -> TlsFiles | None:
    """The TLS files; without any, TlsConfigError unless the development flag allows plaintext (then None)."""
    files = tls_from_env(environ)
    if files is None and not insecure_dev_allowed(environ):
        raise TlsConfigError(
            f"mutual TLS is required: set {', '.join(TLS_ENV)} (`make certs` makes them), "
            f"or {INSECURE_DEV_FLAG}=1 for a development run without TLS"
        )
    return files


def tls_env(files: TlsFiles) -> dict[str, str]:
    """The environment variables that hand `files` to a child process."""
    return {
        "TLS_CA_FILE": str(files.ca_file),
        "TLS_CERT_FILE": str(files.cert_file),
        "TLS_KEY_FILE": str(files.key_file),
    }


def mutual_tls_from_env(service: str, environ: Mapping[str, str] | None = None) -> TlsFiles:
    """The TLS files, read once so an unreadable one stops the start; TlsConfigError without them, whatever
    TGM_INSECURE_DEV says — for a server that has no plaintext mode at all (the vault)."""
    files = tls_from_env(environ)
    if files is None:
        raise TlsConfigError(f"the {service} requires mutual TLS: set {', '.join(TLS_ENV)}")
    files.read()
    return files
