"""``manage.py actions`` as the command-line tests call it, in process."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


def actions(*args: str) -> str:
    """``manage.py actions ARGS``; its stdout."""
    out = StringIO()
    call_command("actions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(*args: str) -> str:
    """``manage.py actions ARGS`` that must fail: its one-line error."""
    with pytest.raises(CommandError) as raised:
        actions(*args)
    message = str(raised.value)
    assert raised.value.returncode == 1 and "\n" not in message, message
    return message
