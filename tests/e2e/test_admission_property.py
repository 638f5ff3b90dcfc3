"""The proof that admission matches what runs, on specs drawn from the CRD's own schema.

For every drawn manifest: `tideserve validate` gives the API server's verdict; and if the
API server admits it, every child tideserve renders for it (the predictor pod itself
included, under the restricted Pod Security Standard) is accepted by the API server
(server-side dry run), and a sample of the distinct Triton configs it renders loads in
a real Triton.

TIDESERVE_PROPERTY_EXAMPLES (default 300) and TIDESERVE_PROPERTY_TRITON_LOADS (default 8)
size the run; a nightly-style run sets e.g. 5000 and 100.
"""

from __future__ import annotations

import os
import pathlib
import random
import re
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from tideserve_testbed import admitted, fixtures, schema_specs, triton, triton_configs

from tideserve.api import formats

pytestmark = pytest.mark.e2e

EXAMPLES = int(os.environ.get("TIDESERVE_PROPERTY_EXAMPLES", "300"))
TRITON_LOADS = int(os.environ.get("TIDESERVE_PROPERTY_TRITON_LOADS", "8"))


@pytest.fixture(scope="module")
def checker(kube: fixtures.Kube) -> Iterator[admitted.Checker]:
    with fixtures.crd_namespace(kube, "property") as namespace:
        kube.kubectl(
            "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
        )
        # Pods (dry run too) are refused until the namespace has its default ServiceAccount.
        fixtures.eventually(
            lambda: (
                kube.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0
            ),
            60,
            "the namespace's default ServiceAccount",
        )
        yield admitted.Checker(kube, namespace)


def test_admitted_specs_render_children_the_api_server_accepts_and_configs_triton_loads(
    checker: admitted.Checker, tmp_path: pathlib.Path
) -> None:
    verdicts: list[admitted.Verdict] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(schema_specs.manifests())
    def check(manifest: dict[str, object]) -> None:
        verdict = checker.check(manifest)
        verdicts.append(verdict)
        if verdict.admitted:
            assert verdict.validate_problems == (), (manifest, verdict.validate_problems)
            assert verdict.refused_children == (), (manifest, verdict.refused_children)
        else:
            assert verdict.validate_problems, (manifest, verdict.api_message)

    check()
    accepted = [v for v in verdicts if v.admitted]
    # The property says nothing if the API server refused (nearly) everything drawn.
    assert len(accepted) >= len(verdicts) // 4, f"{len(accepted)} of {len(verdicts)} admitted"
    configs = {
        (c["overrides.pbtxt"], c["remove-fields"]): c
        for v in accepted
        if (c := v.config_map) is not None
    }
    assert configs, "no admitted spec rendered a Triton config override"
    sample = random.Random(len(configs)).sample(sorted(configs), min(TRITON_LOADS, len(configs)))
    with triton_configs.loader(tmp_path) as loader:
        for key in sample:
            loaded, message = loader.load(configs[key])
            assert loaded, f"Triton refused {key[0]!r}: {message}"
    # The figures the README quotes (pytest -s shows them).
    print(
        f"\nadmission property: {len(verdicts)} manifests drawn, {len(accepted)} admitted "
        f"(all children accepted), {len(verdicts) - len(accepted)} refused (validate agreed "
        f"on all), {len(sample)} of {len(configs)} distinct Triton configs loaded"
    )


def test_every_option_of_the_tested_triton_is_either_the_users_or_tideserves() -> None:
    # When the pinned Triton gains an option, this says to decide whose it is.
    info = triton._install()
    result = subprocess.run(
        [info["server"], "--help"], env=triton._env(info), capture_output=True, text=True,
        check=False, timeout=60,
    )  # fmt: skip
    options = set(re.findall(r"^\s+--([a-z0-9-]+)", result.stdout + result.stderr, re.M))
    assert len(options) > 50
    known = {*formats.user_options(), *formats.MANAGED_OPTIONS, *formats.UNAVAILABLE_OPTIONS}
    known.add("help")
    assert sorted(options - known) == []
