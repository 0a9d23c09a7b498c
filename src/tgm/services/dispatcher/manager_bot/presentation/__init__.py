"""The manager bot's look in Telegram: its replies (src/tgm/domain/manager_bot/view.py) as HTML and keyboards."""
