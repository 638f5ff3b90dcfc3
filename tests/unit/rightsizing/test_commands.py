"""`tideserve recommend`: rows and the table (the cluster part is in the integration tests)."""

from __future__ import annotations

import io
import pathlib

import pytest

from tideserve import kube
from tideserve.api import resource
from tideserve.rightsizing import commands

pytestmark = pytest.mark.unit


def isvc(recommendation: dict | None, replicas: int = 2) -> resource.InferenceService:
    status: dict = {"replicas": replicas, "accelerator": "gpu:NVIDIA-L4"}
    if recommendation:
        status["recommendation"] = recommendation
    return resource.InferenceService.model_validate(
        {
            "metadata": {"namespace": "ml", "name": "bert"},
            "spec": {
                "model": {"name": "bert", "storageUri": "s3://b/m"},
                "resources": {"accelerator": "auto", "rightSizing": {"mode": "recommend"}},
            },
            "status": status,
        }
    )


def test_monthly_cost_before_and_after() -> None:
    r = commands.row(
        isvc(
            {
                "accelerator": "cpu",
                "cpu": "2",
                "memory": "4Gi",
                "costPerHourNow": 0.75,
                "costPerHourRecommended": 0.08,
                "replicas": 3,
                "reason": "cheaper",
            }
        )
    )
    assert r.now == "gpu:NVIDIA-L4 1/2Gi"
    assert r.recommended == "cpu 2/4Gi"
    assert r.monthly_now == pytest.approx(0.75 * 2 * 730)
    assert r.monthly_after == pytest.approx(0.08 * 3 * 730)
    out = io.StringIO()
    commands.render([r], "USD", out)
    text = out.getvalue()
    assert "ml/bert" in text
    assert "2->3" in text
    assert "1,095.00 USD" in text  # 0.75 x 2 x 730
    assert "saving 919.80 USD" in text


def test_no_recommendation_yet() -> None:
    r = commands.row(isvc(None, replicas=0))
    assert r.recommended == "-"
    assert r.saving is None


def test_recommend_without_a_cluster_says_so_instead_of_a_traceback(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Outside a pod, and no client left configured by an earlier test of the run.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube, "_client", None)
    missing = tmp_path / "no-kubeconfig"
    assert commands.main_recommend(["--kubeconfig", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "tideserve recommend: no API server to talk to: not in a pod, and no usable " in err
    assert f"kubeconfig at {missing} (" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("option", ["--step", "--history", "--seconds", "--latency-ms"])
def test_recommend_refuses_windows_and_probes_of_zero_by_name(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        commands.parse_args([option, "0"])
    assert f"argument {option}: 0: want a number above 0" in capsys.readouterr().err
