"""Catalog prices: sources and date, GPU VM bundles, MIG slices priced by how many fit."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from tideserve.rightsizing import catalog, quantities

pytestmark = pytest.mark.unit

GIB = quantities.GIB
VALUES = pathlib.Path(__file__).resolve().parents[3] / "charts" / "tideserve" / "values.yaml"


def option(cat: catalog.Catalog, name: str) -> catalog.Option:
    found = catalog.find(cat, name)
    assert found is not None
    return found


def test_default_prices_say_where_they_come_from_and_when() -> None:
    assert catalog.DEFAULT.source
    assert catalog.DEFAULT.priced_at is not None
    assert all(gpu.source for gpu in catalog.DEFAULT.gpus)


def test_a_gpu_vm_does_not_charge_again_for_the_vcpu_and_memory_it_includes() -> None:
    l4 = option(catalog.DEFAULT, "gpu:NVIDIA-L4")  # g2-standard-4: 4 vCPU, 16 GB included
    rates = catalog.DEFAULT.cpu
    inside = catalog.replica_price(catalog.DEFAULT, l4, 4, 16 * GIB)
    assert inside == pytest.approx(l4.price_per_hour)
    beyond = catalog.replica_price(catalog.DEFAULT, l4, 6, 20 * GIB)
    expected = l4.price_per_hour + 2 * rates.cost_per_core_hour + 4 * rates.cost_per_gib_hour
    assert beyond == pytest.approx(expected)


def test_two_gpus_include_twice_the_bundle() -> None:
    l4 = option(catalog.DEFAULT, "gpu:NVIDIA-L4")
    assert catalog.replica_price(catalog.DEFAULT, l4, 8, 32 * GIB, count=2) == pytest.approx(
        2 * l4.price_per_hour
    )


@pytest.mark.parametrize(("profile", "fit"), [("1g.10gb", 7), ("2g.20gb", 3), ("3g.40gb", 2)])
def test_a_slice_costs_the_gpu_over_how_many_fit(profile: str, fit: int) -> None:
    gpu = option(catalog.DEFAULT, "gpu:NVIDIA-A100-SXM4-80GB")
    mig = option(catalog.DEFAULT, f"mig:{profile}")
    assert mig.price_per_hour == pytest.approx(gpu.price_per_hour / fit, abs=1e-4)
    # ...and gets that share of the VM's bundle.
    assert mig.included_cores == pytest.approx(gpu.included_cores / fit)


def test_two_3g_slices_cost_a_whole_gpu_not_six_sevenths() -> None:
    gpu = option(catalog.DEFAULT, "gpu:NVIDIA-A100-SXM4-80GB")
    mig = option(catalog.DEFAULT, "mig:3g.40gb")
    assert 2 * mig.price_per_hour == pytest.approx(gpu.price_per_hour, abs=1e-3)


def test_a_slice_priced_in_the_catalog_keeps_its_price_and_per_gpu_overrides_the_count() -> None:
    text = """
    gpus:
      - product: X
        memoryGiB: 80
        costPerHour: 7
        migProfiles:
          - {profile: 1g.10gb, memoryGiB: 10, costPerHour: 0.5}
          - {profile: 2g.20gb, memoryGiB: 20, perGpu: 2}
    """
    cat = catalog.parse(text)
    assert option(cat, "mig:1g.10gb").price_per_hour == 0.5
    assert option(cat, "mig:2g.20gb").price_per_hour == 3.5


def test_the_charts_catalog_matches_the_same_rules() -> None:
    parsed = catalog.Catalog.model_validate(yaml.safe_load(VALUES.read_text())["catalog"])
    assert parsed.source and parsed.priced_at is not None
    for gpu in parsed.gpus:
        for mig in gpu.mig_profiles:
            assert mig.cost_per_hour == pytest.approx(gpu.cost_per_hour / mig.slices(), abs=1e-3)


def test_a_bad_per_gpu_is_a_field_named_error() -> None:
    with pytest.raises(ValueError, match="perGpu"):
        catalog.parse(
            "gpus: [{product: X, memoryGiB: 8, costPerHour: 1,"
            " migProfiles: [{profile: 1g.1gb, memoryGiB: 1, perGpu: 9}]}]"
        )
