"""Without an API server to reach, `tideserve run`, `activator` and `recommend` say so in
one line naming the kubeconfig they tried, instead of a traceback."""

from __future__ import annotations

import pathlib

import pytest

from tideserve import kube, kubeconfig
from tideserve.activator import server

pytestmark = pytest.mark.unit

BAD = ["", "garbage: [\n", "a: b\n", "apiVersion: v1\nclusters: 5\n"]


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setattr(kube, "_client", None)


@pytest.mark.usefixtures("outside_a_pod")
@pytest.mark.parametrize("text", BAD)
def test_configure_names_the_kubeconfig_it_could_not_use(tmp_path: pathlib.Path, text: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    with pytest.raises(kubeconfig.NoCluster, match=f"no usable kubeconfig at {path} "):
        kube.configure(str(path))
    missing = tmp_path / "missing"
    with pytest.raises(kubeconfig.NoCluster, match=f"no usable kubeconfig at {missing} "):
        kube.configure(str(missing))


@pytest.mark.usefixtures("outside_a_pod")
def test_the_activator_exits_with_one_line(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("a: b\n")
    assert server.main(["--namespace", "x", "--kubeconfig", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tideserve activator: no API server to talk to: not in a pod, and ")
    assert "Traceback" not in err and err.count("\n") == 1
