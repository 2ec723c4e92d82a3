"""npm packages for hooks: resolved and fetched at save or build time, never
at request time.

``resolve`` turns ``{name: range}`` into a lock: every package, transitive
ones included, at an exact version, placed in a ``node_modules`` tree the way
npm places them (as high as Node's resolution still finds the right version).
``install`` fetches each tarball from the registry, checks it against the
registry's integrity hash and unpacks it once into a content-addressed store,
however many hooks and tenants use it. Nothing a package ships ever runs
here: install scripts are ignored, and a package that needs a native build
is refused (pure JavaScript only). ``ModuleTree`` reads a lock's files for
the sandbox's ``require``.

This module knows nothing of Django: the worker process reads the store too.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_REGISTRY = "https://registry.npmjs.org"
MAX_PACKAGES = 200  # transitive, per lock
MAX_UNPACKED_BYTES = 30_000_000  # per lock
MAX_FILE_BYTES = 5_000_000  # one module file read by require
ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"

# npm's rule for a package name (validate-npm-package-name; capitals, which
# old packages such as JSONStream have, allowed): no path separator but a
# scope's one, no leading dot, at most 214 characters.
_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[A-Za-z0-9][A-Za-z0-9._~-]*$")
MAX_NAME_LENGTH = 214

FetchJson = Callable[[str], Any]
FetchBytes = Callable[[str], bytes]


class DependencyError(Exception):
    """A dependency cannot be had; the message names it and says why."""


@dataclass(frozen=True)
class LockedPackage:
    """One package of a lock, at its place in the tree."""

    path: str  # node_modules/a, or node_modules/a/node_modules/b
    name: str
    version: str
    integrity: str  # SRI, e.g. sha512-…
    tarball: str


def _http_get(url: str, accept: str) -> bytes:
    import urllib3

    try:
        response = urllib3.request(
            "GET", url, headers={"Accept": accept}, timeout=urllib3.Timeout(10, 60), retries=2
        )
    except urllib3.exceptions.HTTPError as error:
        raise DependencyError(f"the registry did not answer for {url}: {error}") from None
    if response.status == 404:
        raise DependencyError(f"not found in the registry: {url}")
    if response.status != 200:
        raise DependencyError(f"the registry answered {response.status} for {url}")
    return bytes(response.data)


def registry_json(registry: str) -> FetchJson:
    def fetch(name: str) -> Any:
        return json.loads(_http_get(f"{registry.rstrip('/')}/{quote(name, safe='@')}", ABBREVIATED))

    return fetch


def registry_bytes(url: str) -> bytes:
    return _http_get(url, "application/octet-stream")


def valid_name(name: str) -> bool:
    """Whether ``name`` is an npm package name (nothing that walks a path)."""
    return len(name) <= MAX_NAME_LENGTH and bool(_NAME.match(name)) and ".." not in name


def _pick(name: str, wanted: str, packument: Mapping[str, Any]) -> dict[str, Any]:
    import nodesemver

    versions = packument.get("versions") or {}
    tags = packument.get("dist-tags") or {}
    wanted = wanted.strip() or "latest"
    if wanted in tags:
        version = tags[wanted]
    else:
        if any(wanted.startswith(p) for p in ("git", "http:", "https:", "file:", "github:")) or (
            "/" in wanted
        ):
            raise DependencyError(f"{name}@{wanted}: only versions from the registry are supported")
        try:
            version = nodesemver.max_satisfying(list(versions), wanted, loose=True)
        except Exception:
            raise DependencyError(f"{name}@{wanted}: not a valid version range") from None
    if version is None or version not in versions:
        raise DependencyError(f"{name}@{wanted}: no version of {name} satisfies {wanted!r}")
    return dict(versions[version])


def resolve(
    wanted: Mapping[str, str],
    *,
    fetch_json: FetchJson,
    max_packages: int = MAX_PACKAGES,
) -> list[LockedPackage]:
    """Exact versions for ``wanted`` and everything they depend on, placed
    as npm places them. Raises ``DependencyError``."""
    import nodesemver

    packuments: dict[str, Any] = {}
    placed: dict[str, dict[str, Any]] = {}  # path -> manifest of the version there

    def packument(name: str) -> Any:
        if name not in packuments:
            packuments[name] = fetch_json(name)
        return packuments[name]

    def visible(from_dir: str, name: str) -> str | None:
        """The path Node's resolution finds ``name`` at, from a package at ``from_dir``."""
        directory = from_dir
        while True:
            candidate = (
                posixpath.join(directory, "node_modules", name)
                if directory
                else f"node_modules/{name}"
            )
            if candidate in placed:
                return candidate
            if not directory:
                return None
            # Up one package: strip "/node_modules/<pkg>" (scoped names have two parts).
            head, _, _ = directory.rpartition("/node_modules/")
            directory = head if "/node_modules/" in directory else ""

    queue: list[tuple[str, str, str]] = [("", name, rng) for name, rng in sorted(wanted.items())]
    while queue:
        parent, name, rng = queue.pop(0)
        if not valid_name(name):
            raise DependencyError(f"{name[:100]!r} is not an npm package name")
        found = visible(parent, name)
        if found is not None and nodesemver.satisfies(
            placed[found]["version"], rng or "*", loose=True
        ):
            continue
        manifest = _pick(name, rng, packument(name))
        path = (
            f"node_modules/{name}"
            if found is None
            else posixpath.join(parent, "node_modules", name)
        )
        if path in placed:  # the requiring package's own copy already differs
            raise DependencyError(f"{name}: conflicting versions cannot be placed")
        _check_manifest(manifest)
        placed[path] = manifest
        if len(placed) > max_packages:
            raise DependencyError(f"more than {max_packages} packages in all")
        for dep, dep_range in sorted((manifest.get("dependencies") or {}).items()):
            queue.append((path, dep, str(dep_range)))
    return [
        LockedPackage(
            path=path,
            name=str(manifest["name"]),
            version=str(manifest["version"]),
            integrity=_integrity(manifest),
            tarball=str(manifest["dist"]["tarball"]),
        )
        for path, manifest in sorted(placed.items())
    ]


def _integrity(manifest: Mapping[str, Any]) -> str:
    dist = manifest.get("dist") or {}
    if dist.get("integrity"):
        return str(dist["integrity"]).split()[0]
    if dist.get("shasum"):
        return "sha1-" + base64.b64encode(bytes.fromhex(dist["shasum"])).decode()
    raise DependencyError(f"{manifest.get('name')}@{manifest.get('version')} has no integrity hash")


def _check_manifest(manifest: Mapping[str, Any]) -> None:
    label = f"{manifest.get('name')}@{manifest.get('version')}"
    if manifest.get("gypfile"):
        raise DependencyError(
            f"{label} needs a native build: only pure JavaScript packages run in hooks"
        )


def _verify(data: bytes, integrity: str, label: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm not in ("sha512", "sha384", "sha256", "sha1"):
        raise DependencyError(f"{label}: unsupported integrity algorithm {algorithm}")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise DependencyError(f"{label}: the tarball does not match its integrity hash")


def store_dir(store: Path, integrity: str) -> Path:
    return store / hashlib.sha256(integrity.encode()).hexdigest()


def install(
    lock: list[LockedPackage],
    store: Path,
    *,
    fetch_bytes: FetchBytes = registry_bytes,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
) -> None:
    """Fetch, verify and unpack every package of ``lock`` that the store
    does not hold yet. Raises ``DependencyError``; a failure leaves nothing
    half-written in the store."""
    store.mkdir(parents=True, exist_ok=True)
    total = 0
    for package in lock:
        target = store_dir(store, package.integrity)
        label = f"{package.name}@{package.version}"
        if not target.exists():
            data = fetch_bytes(package.tarball)
            _verify(data, package.integrity, label)
            _unpack(data, target, label, max_unpacked_bytes - total)
        total += sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        if total > max_unpacked_bytes:
            raise _too_large(max_unpacked_bytes)
        _check_module_format(target, label)


def _too_large(limit: int) -> DependencyError:
    return DependencyError(f"the dependencies unpack to more than {limit} bytes")


def _unpack(data: bytes, target: Path, label: str, room: int) -> None:
    """Unpack the tarball ``data`` into ``target``, unless its files add up to
    more than ``room`` bytes (read from the headers: a compressed bomb is
    refused before anything is written)."""
    scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = []
            size = 0
            for member in archive.getmembers():
                size += member.size
                if size > room:
                    raise _too_large(room)
                parts = member.name.split("/", 1)
                if len(parts) != 2 or not parts[1]:
                    continue
                if not (member.isfile() or member.isdir()):
                    continue  # no links or devices
                if member.name.endswith(".node") or parts[1].endswith("binding.gyp"):
                    raise DependencyError(
                        f"{label} ships native code: only pure JavaScript packages run in hooks"
                    )
                member.name = parts[1]  # drop the tarball's top folder ("package/")
                members.append(member)
            archive.extractall(scratch, members=members, filter="data")
        os.replace(scratch, target)  # another process may have won: both are the same bytes
    except tarfile.TarError as error:
        raise DependencyError(f"{label}: the tarball cannot be read: {error}") from None
    except OSError:
        if not target.exists():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_module_format(directory: Path, label: str) -> None:
    """ESM-only packages cannot be loaded by require: say so at build."""
    try:
        manifest = json.loads((directory / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    exports = manifest.get("exports")
    if manifest.get("type") == "module" and not str(manifest.get("main", "")).endswith(".cjs"):
        has_require = isinstance(exports, dict) and "require" in json.dumps(exports)
        if not has_require:
            raise DependencyError(
                f"{label} is an ES module only: hooks load CommonJS with require(); "
                "use a version that ships CommonJS"
            )


def lock_to_json(lock: list[LockedPackage]) -> list[dict[str, str]]:
    return [asdict(p) for p in lock]


def lock_from_json(data: Sequence[Mapping[str, str]]) -> list[LockedPackage]:
    return [LockedPackage(**dict(item)) for item in data]


BUILTINS_LOCK = Path(__file__).with_name("builtins.lock.json")


@functools.lru_cache(maxsize=1)
def builtins_lock() -> list[LockedPackage]:
    """The npm packages behind Node's built-ins in hooks, pinned in the repo."""
    return lock_from_json(json.loads(BUILTINS_LOCK.read_text(encoding="utf-8"))["packages"])


def default_store() -> Path:
    """``TESSERA_NPM_STORE``, else ``var/npm`` beside the project."""
    return Path(os.environ.get("TESSERA_NPM_STORE") or Path(__file__).parents[2] / "var" / "npm")


@dataclass(frozen=True)
class Packages:
    """Where a hook version's ``require`` finds its files: the store, and
    the lock of its own dependencies (none by default)."""

    store: str
    lock: tuple[LockedPackage, ...] = ()

    @cached_property
    def key(self) -> str:
        """Names the lock: a warm context made with another lock is another context."""
        text = json.dumps(lock_to_json(list(self.lock)), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_meta(self) -> dict[str, Any]:
        return {"store": self.store, "lock": lock_to_json(list(self.lock))}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Packages:
        return cls(store=str(meta["store"]), lock=tuple(lock_from_json(meta["lock"])))


_present: set[str] = set()  # package folders known to exist in the store


@functools.lru_cache(maxsize=1 << 16)
def _kind_within(path: str) -> str:
    """``file``, ``dir`` or ``""``: memoised, for a path inside a package
    folder that exists, which never changes once unpacked."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return ""
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else ""


class ModuleTree:
    """The files of one lock, as ``require`` sees them: a ``node_modules``
    tree whose packages live in the store. Reads nothing outside it.

    The store holds only files and folders (``_unpack`` skips links), so a
    normalised path under a package's folder stays in it: no path is
    resolved on the file system, and what a path is gets memoised for the
    process (``require`` asks for many, on every context's first run).
    """

    def __init__(self, store: Path, lock: list[LockedPackage]) -> None:
        self._roots = sorted(
            ((p.path, str(store_dir(store, p.integrity))) for p in lock),
            key=lambda item: -len(item[0]),
        )

    def _locate(self, path: str) -> str | None:
        path = posixpath.normpath("/" + path).lstrip("/")
        for prefix, root in self._roots:
            if path == prefix or path.startswith(prefix + "/"):
                if root not in _present:
                    if not os.path.isdir(root):
                        return None
                    _present.add(root)
                inner = path[len(prefix) :].lstrip("/")
                return posixpath.join(root, inner) if inner else root
        return None

    def kind(self, path: str) -> str:
        """``file``, ``dir`` or ``""`` for ``path`` in the tree."""
        if path in ("node_modules", ""):
            return "dir"
        found = self._locate(path)
        if found is None:
            # A folder above packages (node_modules/@scope) exists if some package is under it.
            prefix = posixpath.normpath("/" + path).lstrip("/") + "/"
            return "dir" if any(p.startswith(prefix) for p, _ in self._roots) else ""
        return _kind_within(found)

    def read(self, path: str) -> str | None:
        found = self._locate(path)
        if found is None or _kind_within(found) != "file":
            return None
        with open(found, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return None
        return data.decode("utf-8", errors="replace")


def install_builtins(store: Path | None = None) -> int:
    """Fetch the built-ins' pinned packages into the store; the number of packages."""
    lock = builtins_lock()
    install(lock, store or default_store())
    return len(lock)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m hooks.runtime.npm",
        description="Fetch the npm packages behind Node's built-ins in hooks into the store.",
    )
    parser.add_argument("command", choices=["install-builtins"])
    parser.add_argument(
        "--store", type=Path, default=None, help="default: TESSERA_NPM_STORE or var/npm"
    )
    args = parser.parse_args(argv)
    try:
        count = install_builtins(args.store)
    except DependencyError as error:
        sys.stderr.write(f"{error}\n")
        return 1
    print(f"{count} packages for hooks' built-in modules in {args.store or default_store()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
