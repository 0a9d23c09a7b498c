"""Outbound flood control: every Telegram call a bot makes is queued per (bot, chat) and sent by a drain.

One abstraction per module: calls.py (the queue JSON of the domain's typed calls), ports.py (this side's ports),
store.py (the outbox lists, Redis and memory), outbox_lane.py (the drain's steps on them), send_gate.py and
direct_send.py (a reply sent at once from the chat drain), queued_outbox.py (the Outbox port), drain.py (DrainOutbox),
after_send.py (what follows Telegram's answer), scheduling.py (the drain_outbox message), flushing_handler.py.
"""
