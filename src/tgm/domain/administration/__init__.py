"""The registry's bounded context: administering bots for the admins who own or help run them.

Only tgm.services.botregistry runs these use cases; the dispatcher reaches them over gRPC through the `BotAdmin` port.
"""
