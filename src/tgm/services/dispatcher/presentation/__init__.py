"""How tgm's messages look in Telegram: the domain's replies (src/tgm/domain/view.py) as HTML or plain text, buttons as
keyboards, one adapter per view port (the manager bot, the CAPTCHA, the inbox, the broadcasts; docs/adr/007)."""
