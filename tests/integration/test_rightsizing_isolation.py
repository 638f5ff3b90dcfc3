"""A right-sizing pass on the real API server where one endpoint's advice fails: that
endpoint gets a Warning Event (RightSizingFailed), the others their status as usual."""

from __future__ import annotations

from typing import Any

import pytest
from tideserve_testbed import fixtures

from tideserve import kube as kube_api
from tideserve import settings as settings_mod
from tideserve.rightsizing import advisor, catalog, loop, signals

pytestmark = pytest.mark.integration


class Boom(RuntimeError):
    """The injected failure."""


def test_one_endpoints_failed_advice_costs_only_that_endpoint(
    kube: fixtures.Kube,
    prometheus: fixtures.Prometheus,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube_api.configure(str(kube.kubeconfig))
    names = ["a", "broken", "c"]
    for name in names:
        kube.apply(fixtures.isvc(name, namespace, resources={"accelerator": "cpu"}))
    real = advisor.advise

    def advise(spec: Any, *args: Any, **kwargs: Any) -> advisor.Advice:
        if spec.model.name == "broken":
            raise Boom("advice failed")
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(advisor, "advise", advise)
    broken_model = dict(fixtures.PLACEHOLDER_MODEL, name="broken")
    kube.apply(fixtures.isvc("broken", namespace, model=broken_model))
    settings = settings_mod.Settings(prometheus_url=prometheus.url, watch_namespaces=(namespace,))
    prom = signals.Prometheus(prometheus.url)
    try:
        result = loop.tick(settings, catalog.DEFAULT, prom, loop.Config())
    finally:
        prom.close()
    assert set(result.written) == {(namespace, "a"), (namespace, "c")}
    for name in ("a", "c"):
        assert "cost" in kube.get_json(fixtures.CRD_NAME, "-n", namespace, name)["status"]
    events = kube.events(namespace, "broken")
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", loop.FAILED_REASON)]
    assert "Boom" in events[0]["message"]
