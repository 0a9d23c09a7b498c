"""python -m tgm.tools.telegram_emulator --host 127.0.0.1 --port 8081"""

from __future__ import annotations

import argparse
import contextlib
import logging

import uvicorn

from tgm.tools.telegram_emulator.app import create_app
from tgm.tools.telegram_emulator.server import uvicorn_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tgm.tools.telegram_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--retry-initial-delay", type=float, default=0.5, help="first webhook redelivery delay (s)")
    parser.add_argument("--retry-max-delay", type=float, default=60.0, help="cap of the doubling delay (s)")
    parser.add_argument("--webhook-timeout", type=float, default=10.0, help="webhook request timeout (s)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=64,
        help="webhook requests in flight over all bots (each bot also keeps to its max_connections); 0: no cap",
    )
    parser.add_argument(
        "--no-flood-control",
        action="store_true",
        help="never answer 429 (Telegram does: 30 msg/s per bot, 1/s per chat, 20/min per group); benchmarks only",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(
        retry_initial_delay=args.retry_initial_delay,
        retry_max_delay=args.retry_max_delay,
        webhook_timeout=args.webhook_timeout,
        max_in_flight=args.max_in_flight,
        flood_control=not args.no_flood_control,
    )
    uvicorn.Server(uvicorn_config(app, args.host, args.port, log_level=args.log_level)).run()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C on `make run` reaches the whole process group
        main()
