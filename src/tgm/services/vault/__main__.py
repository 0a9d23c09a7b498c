"""`python -m tgm.services.vault serve | init [--once] | destroy N | genkey | audit verify`: the command line is
tgm.apps.cli.vault (arguments and output); the commands are tgm.services.vault.commands."""

import sys

from tgm.apps.cli.vault import main

if __name__ == "__main__":
    sys.exit(main())
