"""The test database seen from elsewhere: another process's DATABASE_URL."""

from django.db import connection


def database_url() -> str:
    """The test database, as DATABASE_URL names it for a process the test starts."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params["USER"] or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = f"{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    return f"postgresql://{user}{password}@{host}/{params['NAME']}"
