"""The webhook gateway: checks each Telegram call and hands the update to the queue."""
