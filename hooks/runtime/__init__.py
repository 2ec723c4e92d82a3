"""The hook runtime: runs tenants' JavaScript hooks (Auth0 credentials-exchange
Hooks) in QuickJS through the ``quickjs-ng`` package. It knows nothing of
Django; the token pipeline, the test runner and the CLI call it through
``hooks.execution``.

The narrow interface, the same in both isolation modes:

- ``run(context_key=, script=, arg_names=, payload=, secrets=, storage=,
  limits=, egress=, packages=)`` returns a :class:`RunResult` or raises a
  :class:`HookError` subclass;
- ``check(script=, limits=, packages=)`` compiles a script and runs its
  module body in a throwaway context, returning what the module exports, or
  raises. ``packages`` (:class:`Packages`: the store and a pinned lock) is
  what ``require`` loads besides Node's built-ins.

Two implementations: :class:`InProcessRuntime` (the default) runs hooks on
the calling thread, in warm contexts its threads share; :class:`HookPool` runs the
same engine in worker processes that hold no server secrets. A
:class:`Governor` in front of either caps concurrent runs per tenant and
trips a breaker for hooks that keep timing out; a run waiting on its
fetches gives its tenant's slot back meanwhile. ``engine.py`` is the only
module that touches QuickJS, so the engine can be swapped behind it.
"""

from .egress import EgressPolicy, parse_tenant_hosts
from .errors import (
    HookBusy,
    HookCpuLimit,
    HookCrashed,
    HookError,
    HookMemoryLimit,
    HookRefused,
    HookResultError,
    HookStalled,
    HookSuspended,
    HookSyntaxError,
    HookTimeout,
)
from .fairness import ComputeGate, Governor
from .inprocess import InProcessRuntime
from .npm import Packages
from .pool import HookPool
from .records import Limits, RunResult, StorageSnapshot, StorageWrite, script_key

__all__ = [
    "ComputeGate",
    "EgressPolicy",
    "Governor",
    "HookBusy",
    "HookCpuLimit",
    "HookCrashed",
    "HookError",
    "HookMemoryLimit",
    "HookPool",
    "HookRefused",
    "HookResultError",
    "HookStalled",
    "HookSuspended",
    "HookSyntaxError",
    "HookTimeout",
    "InProcessRuntime",
    "Limits",
    "Packages",
    "RunResult",
    "StorageSnapshot",
    "StorageWrite",
    "parse_tenant_hosts",
    "script_key",
]
