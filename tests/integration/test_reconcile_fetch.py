"""The rendered model-fetch step for https:// run for real against a loopback server.

The pod runs the script in curlimages/curl (busybox ash); here bash runs it, the closest
shell with `pipefail` on this machine. Credentials come from the environment only, as
the Secret's envFrom would put them there.
"""

from __future__ import annotations

import http.server
import io
import pathlib
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tideserve.api import spec as spec_api
from tideserve.render import deployment, storage

pytestmark = pytest.mark.integration


def archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in {
            "tiny/config.pbtxt": 'name: "tiny"\n',
            "tiny/1/model.py": "x = 1\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    return buffer.getvalue()


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    payload = archive()
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization") or "")
            if self.path != "/repo/tiny.tar.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def run_fetch(
    uri: str, target: pathlib.Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    model = spec_api.ModelSpec(name="tiny", storage_uri=uri.replace("http://", "https://"))
    container = storage.fetch_container(model, deployment.container_security_context())
    assert container is not None
    script = (
        container["command"][-1]
        .replace("/tmp/model.zip", f"{target}/model.zip")
        .replace(" /models", f" {target}")
    )
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "STORAGE_URI": uri, "HOME": str(target)} | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_https_archive_is_unpacked_into_the_repository(
    server: tuple[str, list[str]], tmp_path: pathlib.Path
) -> None:
    url, seen = server
    result = run_fetch(f"{url}/repo/tiny.tar.gz", tmp_path, {"AUTHORIZATION": "Bearer s3cret"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tiny" / "config.pbtxt").read_text() == 'name: "tiny"\n'
    assert (tmp_path / "tiny" / "1" / "model.py").exists()
    assert seen == ["Bearer s3cret"]


def test_a_failed_download_fails_the_step(
    server: tuple[str, list[str]], tmp_path: pathlib.Path
) -> None:
    url, _ = server
    result = run_fetch(f"{url}/repo/missing.tar.gz", tmp_path, {})
    assert result.returncode != 0
