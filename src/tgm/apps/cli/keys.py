"""`tgm keys status|rotate|retire N`: the vault's operator verbs over gRPC with this process's certificate (TLS_*
env: the operator's). Nothing here holds or reads a key: the vault does the work, checks the caller and audits it.

A rotation is also added to the registry's event trail (`key_rotated`, RecordEvent with the operator's certificate)
when REGISTRY_ADDR is set, so `tgm events` shows it next to the admin actions. The vault's tamper-evident audit log
(`tgm audit verify`) stays the record of key operations; a trail entry that cannot be written is reported on stderr
and the rotation stands (the trail is not the audit log: no "failed write refuses the call" rule here)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import grpc

from tgm.grpc_runtime.channels import VAULT_SERVER_NAME, open_channel
from tgm.vault.v1 import vault_pb2, vault_pb2_grpc


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="vault key versions: status | rotate | retire N (operator certificate)")
    keys.add_argument("action", choices=["status", "rotate", "retire"])
    keys.add_argument("version", type=int, nargs="?")
    keys.add_argument("--addr", default=os.environ.get("VAULT_ADDR", "127.0.0.1:50051"))


def main(args: argparse.Namespace) -> int:
    if args.action == "retire" and args.version is None:
        print("tgm keys retire needs a version", file=sys.stderr)
        return 2
    return key_command(args.addr, args.action, args.version)


def key_command(addr: str, action: str, version: int | None) -> int:
    """Exit 0 done, 1 refused by the vault (its status code and reason printed)."""
    with open_channel(addr, server_name=VAULT_SERVER_NAME) as channel:
        stub = vault_pb2_grpc.VaultServiceStub(channel)
        try:
            if action == "rotate":
                primary = stub.RotateKey(vault_pb2.RotateKeyRequest()).primary_version
                print(f"primary key version is now {primary}")
                record_rotation(primary)
            elif action == "retire":
                stub.RetireKeyVersion(vault_pb2.RetireKeyVersionRequest(version=version or 0))
                print(f"key version {version} retired")
            else:
                reply = stub.KeyStatus(vault_pb2.KeyStatusRequest())
                for v in reply.versions:
                    flags = " primary" * v.primary + " retired" * v.retired
                    print(f"version {v.version}: age {v.age_seconds // 86400}d ({v.age_seconds}s){flags}")
                print(f"rotation_due={str(reply.rotation_due).lower()}")
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else ""
            print(f"vault {action} failed: {code.name if code else 'UNKNOWN'}: {details}", file=sys.stderr)
            return 1
    return 0


def record_rotation(primary_version: int, channel: grpc.Channel | None = None) -> bool:
    """Adds `key_rotated` to the registry's event trail (REGISTRY_ADDR, or `channel`); whether it was recorded."""
    from tgm.domain.clock import SystemClock
    from tgm.domain.events import Event, EventKind, Outcome
    from tgm.registry_client.events import GrpcEventRecorder

    owned = channel is None
    if channel is None:
        address = os.environ.get("REGISTRY_ADDR", "")
        if not address:
            print("key rotation not added to the event trail (set REGISTRY_ADDR); the vault's audit log has it")
            return False
        channel = open_channel(address, server_name="botregistry")
    # The registry stamps the time and takes the actor from the certificate (the operator's).
    event = Event(
        SystemClock().now(), EventKind.KEY_ROTATED, "operator", None, Outcome.DONE, {"version": str(primary_version)}
    )
    try:
        GrpcEventRecorder(channel).record(event)
    except Exception as error:
        print(f"key rotation not added to the event trail: {error}", file=sys.stderr)
        return False
    finally:
        if owned:
            channel.close()
    return True
