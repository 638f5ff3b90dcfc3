"""The HPA baseline against the worked examples of the Kubernetes HPA documentation."""

from __future__ import annotations

import pytest

from tideserve.sim import hpa

pytestmark = pytest.mark.unit


def test_doubles_when_metric_is_twice_the_target() -> None:
    # "if the current metric value is 200m, and the desired value is 100m, the number of
    # replicas will be doubled, since 200.0 / 100.0 == 2.0"
    assert hpa.plain_metric_replicas(1, 1, 0, 0.200, 0.100) == 2
    assert hpa.plain_metric_replicas(3, 3, 0, 0.200, 0.100) == 6


def test_halves_when_metric_is_half_the_target() -> None:
    # "If the current value is instead 50m, you'll halve the number of replicas"
    assert hpa.plain_metric_replicas(4, 4, 0, 0.050, 0.100) == 2


def test_tolerance_holds_near_the_target() -> None:
    # "the control plane skips any scaling action if the ratio is sufficiently close to
    # 1.0 (within a globally-configurable tolerance, 0.1 by default)"
    assert hpa.plain_metric_replicas(10, 10, 0, 0.109, 0.100) == 10
    assert hpa.plain_metric_replicas(10, 10, 0, 0.091, 0.100) == 10
    assert hpa.plain_metric_replicas(10, 10, 0, 0.112, 0.100) == 12


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    # 2 ready pods at 2x target and 2 pods still starting: (2*2 + 0*2) / 4 = 1.0 -> hold.
    assert hpa.plain_metric_replicas(4, 2, 2, 2.0, 1.0) == 4
    # At 3x: (2*3) / 4 = 1.5 -> ceil(1.5 * 4) = 6.
    assert hpa.plain_metric_replicas(4, 2, 2, 3.0, 1.0) == 6


def test_scale_down_stabilization_uses_the_highest_recent_recommendation() -> None:
    # "the highest recommendation within the window" (300 s by default).
    h = hpa.Hpa(1, 100)
    assert h.sync(0.0, 10, 10) == 10
    assert h.sync(15.0, 10, 4) == 10  # 10 recommended 15 s ago
    assert h.sync(200.0, 10, 6) == 10
    assert h.sync(301.0, 10, 4) == 6  # the 10 left the window; the max is now 6
    assert h.sync(501.0, 6, 4) == 4


def test_default_scale_up_allows_four_pods_or_double_per_15s() -> None:
    # "4 pods or a 100% of the currently running replicas may at most be added every
    # 15 seconds"
    h = hpa.Hpa(1, 100)
    assert h.sync(0.0, 1, 50) == 5  # max(1 + 4, 2)
    assert h.sync(5.0, 5, 50) == 5  # still inside the period that started at 1
    assert h.sync(15.1, 5, 50) == 10  # max(5 + 4, 10)
    h2 = hpa.Hpa(1, 100)
    assert h2.sync(0.0, 10, 100) == 20


def test_percent_900_scales_to_ten_times() -> None:
    # "900% implies 9 times the current number of pods can be added, effectively making
    # the number of replicas 10 times the current size"
    up = hpa.Rules(0.0, (hpa.RatePolicy("Percent", 900, 60.0),))
    assert hpa.scale_up_limit(1, [], [], 0.0, up) == 10
    assert hpa.scale_up_limit(5, [], [], 0.0, up) == 50


def test_scale_down_policy_example_pods_4_percent_10() -> None:
    # "The first policy (Pods) allows at most 4 replicas to be scaled down in one minute.
    # The second policy (Percent) allows at most 10% of the current replicas ...
    # the second policy will only be used when the number of pod replicas is more than 40"
    down = hpa.Rules(0.0, (hpa.RatePolicy("Pods", 4, 60.0), hpa.RatePolicy("Percent", 10, 60.0)))
    assert hpa.scale_down_limit(80, [], [], 0.0, down) == 72
    assert hpa.scale_down_limit(40, [], [], 0.0, down) == 36
    assert hpa.scale_down_limit(20, [], [], 0.0, down) == 16
    # After removing 8 within the minute, nothing more until the minute passes.
    assert hpa.scale_down_limit(72, [], [(0.0, 8)], 30.0, down) == 72


def test_min_replicas_floor_and_disabled_at_zero() -> None:
    h = hpa.Hpa(1, 10)
    assert h.sync(0.0, 0, 5) == 0  # scaling inactive at zero replicas
    assert h.sync(400.0, 3, 0) == 1


def test_external_average_value() -> None:
    assert hpa.external_per_pod_replicas(2, 40.0, 10.0) == 4
    assert hpa.external_per_pod_replicas(4, 42.0, 10.0) == 4  # within tolerance
