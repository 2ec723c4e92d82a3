"""A local npm registry for the hostile cases of hooks' dependencies: it
serves packuments and tarballs the test builds (an install script, a native
addon, a tarball that escapes its folder, a decompression bomb, a wrong
integrity hash), and counts the tarballs it hands out.

Every package a test builds carries a random marker, so its tarball (and its
integrity hash, and its place in the store) is new to every run: the shared
store (``TESSERA_NPM_STORE``) never holds it from an earlier run.
"""

import base64
import hashlib
import io
import json
import secrets
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


def tarball(files: dict[str, bytes | str], *, top: str = "package") -> bytes:
    """A gzipped tarball of ``files`` (paths under ``top``/, as npm packs them)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{path}" if top else path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Registry:
    """Packages by name and version; ``url`` once served."""

    url: str = ""
    packuments: dict[str, dict[str, Any]] = field(default_factory=dict)
    tarballs: dict[str, bytes] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)

    def publish(
        self,
        name: str,
        version: str,
        *,
        main: str = "module.exports = {name: %(name)r, version: %(version)r};",
        files: dict[str, bytes | str] | None = None,
        manifest: dict[str, Any] | None = None,
        data: bytes | None = None,
        integrity: str | None = None,
    ) -> str:
        """Add ``name@version``; returns its marker. ``data`` replaces the
        tarball built from ``files``; ``integrity`` replaces its true hash."""
        marker = secrets.token_hex(8)
        package_json = {
            "name": name,
            "version": version,
            "main": "index.js",
            "marker": marker,
            **(manifest or {}),
        }
        contents: dict[str, bytes | str] = {
            "package.json": json.dumps(package_json),
            "index.js": main % {"name": name, "version": version},
            **(files or {}),
        }
        blob = data if data is not None else tarball(contents)
        file_name = f"{name.replace('/', '-')}-{version}-{marker}.tgz"
        self.tarballs[file_name] = blob
        digest = base64.b64encode(hashlib.sha512(blob).digest()).decode()
        entry = {
            **package_json,
            "dist": {
                "tarball": f"{self.url}/-/{file_name}",
                "integrity": integrity or f"sha512-{digest}",
            },
        }
        packument = self.packuments.setdefault(
            name, {"name": name, "versions": {}, "dist-tags": {}}
        )
        packument["versions"][version] = entry
        packument["dist-tags"]["latest"] = version
        return marker


def serve_registry() -> Iterator[Registry]:
    registry = Registry()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            path = unquote(self.path.split("?")[0])
            if path.startswith("/-/"):
                blob = registry.tarballs.get(path[3:])
                if blob is not None:
                    registry.downloads[path[3:]] += 1
                    return self._send(200, blob, "application/octet-stream")
            else:
                packument = registry.packuments.get(path.lstrip("/"))
                if packument is not None:
                    return self._send(200, json.dumps(packument).encode(), "application/json")
            self._send(404, b'{"error":"Not found"}', "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    registry.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield registry
    server.shutdown()
    server.server_close()
