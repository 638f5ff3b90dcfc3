"""The rendered model-fetch step for s3:// run for real against an S3-compatible store.

The store is versitygw (hack/build-tools s3) on a directory, which verifies SigV4; the
step is the pod's script run by bash with the AWS CLI from PyPI (v1) on PATH, its
environment exactly what the Secret named by storageSecretRef would give it (the keys,
the region and AWS_ENDPOINT_URL). tests/e2e/test_realnode_fetch.py runs the same step as
the init container of a real pod.
"""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator

import pytest
from tideserve_testbed import s3

from tideserve.api import spec as spec_api
from tideserve.render import deployment, storage

pytestmark = pytest.mark.integration

FILES = {"tiny/config.pbtxt": 'name: "tiny"\n', "tiny/1/model.py": "x = 1\n"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3.Store]:
    with s3.server() as running:
        source = tmp_path_factory.mktemp("upload")
        for name, text in FILES.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_text(text)
        made = s3.aws(running, "s3", "mb", "s3://models")
        assert made.returncode == 0, made.stderr
        put = s3.aws(running, "s3", "cp", "--recursive", str(source), "s3://models/repo")
        assert put.returncode == 0, put.stderr
        yield running


def run_fetch(
    uri: str, target: pathlib.Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    model = spec_api.ModelSpec(name="tiny", storage_uri=uri, storage_secret_ref="creds")
    container = storage.fetch_container(model, deployment.container_security_context())
    assert container is not None
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]
    script = container["command"][-1].replace(" /models", f" {target}")
    aws_dir = str(pathlib.Path(s3.aws_cli()).parent)
    return subprocess.run(
        ["bash", "-c", script],
        env={"PATH": f"{aws_dir}:/usr/bin:/bin", "STORAGE_URI": uri, "HOME": str(target)} | env,
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_repository_is_synced_with_the_secrets_credentials(
    store: s3.Store, tmp_path: pathlib.Path
) -> None:
    result = run_fetch("s3://models/repo", tmp_path, store.credentials())
    assert result.returncode == 0, result.stderr
    for name, text in FILES.items():
        assert (tmp_path / name).read_text() == text


def test_a_wrong_secret_key_fails_the_step(store: s3.Store, tmp_path: pathlib.Path) -> None:
    wrong = store.credentials() | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = run_fetch("s3://models/repo", tmp_path, wrong)
    assert result.returncode != 0
    assert "SignatureDoesNotMatch" in result.stderr or "AccessDenied" in result.stderr, (
        result.stderr
    )
    assert not (tmp_path / "tiny").exists()


def test_without_credentials_the_request_is_unsigned_and_refused(
    store: s3.Store, tmp_path: pathlib.Path
) -> None:
    # No keys in the Secret: the step asks anonymously (--no-sign-request), as for a
    # public bucket; this store's bucket is private, so the step fails.
    result = run_fetch("s3://models/repo", tmp_path, {"AWS_ENDPOINT_URL": store.url})
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr, result.stderr
    assert not (tmp_path / "tiny").exists()
