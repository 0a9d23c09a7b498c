"""Deployment compositions: entry points that wire several services into one process.

Unlike tgm.services.<name>, a composition may import more than one service; nothing imports tgm.apps (but
`python -m tgm.services.vault`, a three-line entry to the vault's command line in tgm.apps.cli.vault).
"""
