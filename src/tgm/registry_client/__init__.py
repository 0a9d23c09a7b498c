"""Client side of the registry's gRPC API: RouteDirectory and BotDirectory adapters."""
