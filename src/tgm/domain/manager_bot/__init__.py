"""The manager bot: the chat in which admins register and run their bots (runs in the dispatcher)."""
