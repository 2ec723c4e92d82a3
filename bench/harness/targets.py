"""What the harness needs to know about a server it benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

from harness.processes import Server
from harness.tokens import TokenExpectation, TokenRequest

AUDIENCE = "https://api.bench.test/"


@dataclass(frozen=True)
class Target:
    """A running token server: how to ask it for a token and what a good one looks like."""

    label: str
    server: Server
    token_request: TokenRequest
    expectation: TokenExpectation
