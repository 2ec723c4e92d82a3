"""npm dependencies of hooks and Actions: resolved when a hook is saved or an
Action is built, never while a token is issued.

``resolve_lock`` turns what a hook or Action declares (``{name: range}``)
into a lock: every package, transitive ones included, at an exact version,
its tarball checked against the registry's integrity hash and unpacked once
into the store (``TESSERA_NPM_STORE``) however many tenants use it. The lock
is then pinned on the hook (and each saved version) or on the Action's draft
(and each deployed version): what runs changes only when the dependencies do.

Resolution reads the network: callers run it before any transaction, so no
row is locked while the registry answers. The whole of it is bounded by
``TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS``.
"""

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from hooks.runtime import npm

Lock = list[dict[str, str]]
logger = logging.getLogger(__name__)

MAX_RANGE_LENGTH = 100


class DependencyRefused(ValidationError):
    """The dependencies cannot be had; the message names the package and why."""


def check_declared(wanted: Mapping[str, Any]) -> dict[str, str]:
    """``wanted`` as ``{name: range}`` if every name is an npm package name
    and every range a short string; raises ``DependencyRefused``."""
    limit = settings.TESSERA_NPM_MAX_DIRECT_DEPENDENCIES
    if len(wanted) > limit:
        raise DependencyRefused(
            f"At most {limit} dependencies may be declared (there are {len(wanted)}).",
            code="too_many_dependencies",
        )
    checked = {}
    for name, wanted_range in wanted.items():
        if not isinstance(name, str) or not npm.valid_name(name):
            raise DependencyRefused(
                f"{str(name)[:100]!r} is not an npm package name.", code="invalid_dependency"
            )
        if not isinstance(wanted_range, str) or len(wanted_range) > MAX_RANGE_LENGTH:
            raise DependencyRefused(
                f"{name}: the version must be a string of at most {MAX_RANGE_LENGTH} characters.",
                code="invalid_dependency",
            )
        checked[name] = wanted_range
    return checked


def parse_declared(lines: Iterable[str]) -> dict[str, str]:
    """``NAME@VERSION`` lines (``NAME`` alone: latest; a scope's ``@`` comes
    first: ``@scope/name@1.2``) as ``{name: range}``; blank lines skipped."""
    wanted = {}
    for line in lines:
        text = line.strip()
        if not text:
            continue
        at = text.rfind("@")
        name, version = (text[:at], text[at + 1 :]) if at > 0 else (text, "")
        wanted[name.strip()] = version.strip() or "latest"
    return wanted


def resolve_lock(wanted: Mapping[str, Any]) -> Lock:
    """The lock for ``wanted`` (``{name: range}``), its packages in the store;
    raises ``DependencyRefused`` naming the package and the reason: an
    unknown package, no version matching, an integrity mismatch, a native
    addon, an ES module only, a limit, or a registry that does not answer."""
    checked = check_declared(wanted)
    if not checked:
        return []
    deadline = time.monotonic() + settings.TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS
    registry = settings.TESSERA_NPM_REGISTRY
    packuments = npm.registry_json(registry)

    def in_time() -> None:
        if time.monotonic() > deadline:
            raise npm.DependencyError(
                f"the registry {registry} did not answer within "
                f"{settings.TESSERA_NPM_RESOLVE_TIMEOUT_SECONDS} s"
            )

    def fetch_json(name: str) -> Any:
        in_time()
        return packuments(name)

    def fetch_bytes(url: str) -> bytes:
        in_time()
        return npm.registry_bytes(url)

    try:
        lock = npm.resolve(
            checked, fetch_json=fetch_json, max_packages=settings.TESSERA_NPM_MAX_PACKAGES
        )
        npm.install(
            lock,
            npm.default_store(),
            fetch_bytes=fetch_bytes,
            max_unpacked_bytes=settings.TESSERA_NPM_MAX_UNPACKED_BYTES,
        )
    except npm.DependencyError as error:
        raise DependencyRefused(f"Dependencies: {error}.", code="dependency_failed") from None
    return npm.lock_to_json(lock)


def packages_for(lock: Lock | None) -> npm.Packages | None:
    """What ``require`` reads for ``lock``: its packages in the store."""
    if not lock:
        return None
    return npm.Packages(store=str(npm.default_store()), lock=tuple(npm.lock_from_json(lock)))


def runnable_packages(lock: Lock | None) -> npm.Packages | None:
    """``packages_for(lock)``, with any package this server's store lacks
    fetched first: the very versions pinned, checked against their integrity
    hashes (nothing is resolved again). A server that joins a fleet, or whose
    store was emptied, gets a saved hook's packages on its first run; if the
    registry does not answer, the run's ``require`` fails naming the module."""
    packages = packages_for(lock)
    if packages is None:
        return None
    store = npm.default_store()
    missing = [p for p in packages.lock if not npm.store_dir(store, p.integrity).is_dir()]
    if missing:
        try:
            npm.install(missing, store, max_unpacked_bytes=settings.TESSERA_NPM_MAX_UNPACKED_BYTES)
        except (npm.DependencyError, OSError) as error:
            logger.warning("could not fetch pinned packages into %s: %s", store, error)
    return packages
