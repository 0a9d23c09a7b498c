"""The manager bot inside the dispatcher: routing, state adapters and wiring."""
