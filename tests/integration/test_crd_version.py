"""The operator's start-up check of the installed CRD, against the real API server."""

from __future__ import annotations

import asyncio
import logging

import prometheus_client
import pytest
from tideserve_testbed import fixtures

from tideserve import kube as kube_api
from tideserve.api import crd, resource
from tideserve.controller import handlers

pytestmark = pytest.mark.integration

NAME = f"{resource.PLURAL}.{resource.GROUP}"


def test_the_installed_crd_is_recognised_as_this_operators(kube: fixtures.Kube) -> None:
    fixtures.install_crds(kube)
    kube_api.configure(str(kube.kubeconfig))
    # The API server keeps the annotation `tideserve crds` writes.
    installed = kube.get_json("crd", NAME)
    assert crd.mismatch(installed) is None
    assert asyncio.run(handlers.check_crd(logging.getLogger("test"))) is True
    assert prometheus_client.REGISTRY.get_sample_value("tideserve_crd_current") == 1
