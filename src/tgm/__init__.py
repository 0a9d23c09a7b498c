"""tgm: the Telegram multi-bot manager. Generated gRPC stubs live in tgm.<service>.v1 (ADR 002)."""
