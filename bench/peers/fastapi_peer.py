"""The floor tgm's gateway is held to: a bare FastAPI webhook endpoint that checks the secret header (constant
time) and, with --lpush, makes the update durable with one `redis.asyncio` LPUSH before answering.

Same uvicorn options as tgm (uvloop + httptools, no access log), one process.
Usage: python -m bench.peers.fastapi_peer PORT BOTS_JSON [--lpush REDIS_URL]   (BOTS_JSON: [{"public_id", "secret"}])
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

SECRET_HEADER = "x-telegram-bot-api-secret-token"
OK = b'{"ok":true}'


def create_app(secret_hashes: dict[str, bytes], redis_url: str = "") -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    redis_client = None
    if redis_url:
        import redis.asyncio

        redis_client = redis.asyncio.Redis.from_url(redis_url, max_connections=256)

    @app.post("/webhook/{public_id}")
    async def webhook(public_id: str, request: Request) -> Response:
        expected = secret_hashes.get(public_id)
        if expected is None:
            return Response(status_code=404)
        presented = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), expected):
            return Response(status_code=403)
        body = await request.body()
        if redis_client is not None:
            await redis_client.lpush(f"bench:updates:{public_id}", body)
        return Response(OK, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("bots_json")
    parser.add_argument("--lpush", default="", metavar="REDIS_URL")
    args = parser.parse_args()
    with open(args.bots_json, encoding="utf-8") as handle:
        bots = json.load(handle)
    hashes = {bot["public_id"]: hashlib.sha256(bot["secret"].encode()).digest() for bot in bots}
    uvicorn.run(
        create_app(hashes, args.lpush),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
