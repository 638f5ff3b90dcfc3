"""The https:// fetch step's script, run with stand-ins for curl, tar, unzip and rm."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from tideserve.api import resource
from tideserve.render import deployment, storage

pytestmark = pytest.mark.unit

BASH = shutil.which("bash")


def script_for(uri: str) -> tuple[str, dict[str, str]]:
    spec = resource.parse_spec({"model": {"name": "m", "storageUri": uri}})
    container = storage.fetch_container(spec.model, deployment.container_security_context())
    assert container is not None
    env = {e["name"]: e["value"] for e in container["env"]}
    return container["command"][2], env


def tools_run(uri: str, tmp_path: pathlib.Path) -> list[str]:
    """Each stand-in tool's name and arguments, as the script called them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("curl", "tar", "unzip", "rm"):
        path = bin_dir / tool
        path.write_text(f'#!{BASH}\necho "{tool} $*" >> {calls}\ncat > /dev/null || true\n')
        path.chmod(0o755)
    script, env = script_for(uri)
    # bash: the image's sh (busybox) has pipefail, the host's dash does not.
    assert BASH is not None
    subprocess.run(
        [BASH, "-c", script],
        env={**env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        check=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    return calls.read_text().splitlines()


@pytest.mark.parametrize(
    ("uri", "extract"),
    [
        ("https://h.example.com/m.tar.gz", "tar -xzf - -C /models"),
        ("https://h.example.com/m.tar", "tar -xf - -C /models"),
        ("https://h.example.com/m.zip", "unzip -q /tmp/model.zip -d /models"),
        # A presigned URL: the query is the signature, not the file's type.
        ("https://h.example.com/m.zip?X-Amz-Signature=abc&X-Amz-Expires=3600", "unzip -q"),
        ("https://h.example.com/m.tar?X-Goog-Signature=abc", "tar -xf - -C /models"),
        ("https://h.example.com/m.zip#part", "unzip -q"),
        ("https://h.example.com/M.ZIP", "unzip -q"),
        ("https://h.example.com/get?file=m.zip&type=tar.gz", "tar -xzf -"),
    ],
)
def test_the_archive_type_comes_from_the_uris_path(
    uri: str, extract: str, tmp_path: pathlib.Path
) -> None:
    calls = tools_run(uri, tmp_path)
    assert any(call.startswith(extract) for call in calls), calls
    # The whole URI, query included, is what is downloaded.
    assert any(call.startswith("curl") and call.endswith(uri) for call in calls), calls
