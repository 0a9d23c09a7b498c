"""The servers tgm's gateway is compared with (run as separate processes by bench/gateway.py)."""
