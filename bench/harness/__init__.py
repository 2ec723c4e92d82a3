"""Building blocks of ``bench/token_endpoint.py``: processes, servers, load, checks, report."""
