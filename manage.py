#!/usr/bin/env python
"""Django's command-line utility for Tessera."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tenant.site.settings")
    from django.core.management import execute_from_command_line
    from django.db import InterfaceError, OperationalError

    from tenant.crypto import KekError

    try:
        execute_from_command_line(sys.argv)
    except KekError as error:
        # A key-encryption key that cannot serve this database: one line
        # naming TESSERA_KEK, and nothing written with the wrong key.
        sys.stderr.write(f"{error}\n")
        sys.exit(1)
    except (OperationalError, InterfaceError) as error:
        # A database that is down is an operator's problem, not a bug: one
        # line and a non-zero exit, no traceback. Nothing was committed.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        sys.stderr.write(f"Database unavailable, nothing changed: {first_line}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
