"""Quantities and the catalog file format."""

from __future__ import annotations

import pathlib

import pydantic
import pytest
import yaml

from tideserve.rightsizing import catalog, quantities

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("2", 2.0),
        ("1Gi", 2**30),
        ("1.5Mi", 1.5 * 2**20),
        ("1e3", 1000.0),
        ("100M", 1e8),
        ("250Mi", 250 * 2**20),
        (3, 3.0),
    ],
)
def test_parse_reads_kubernetes_quantities(text: str | int, value: float) -> None:
    assert quantities.parse(text) == pytest.approx(value)


def test_parse_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="quantity"):
        quantities.parse("lots")


def test_format_rounds_up_to_whole_units() -> None:
    assert quantities.cpu(0.3501) == "351m"
    assert quantities.cpu(2.0) == "2"
    assert quantities.memory(2**30) == "1Gi"
    assert quantities.memory(2**20 * 512.2) == "513Mi"


def test_default_catalog_has_the_public_cloud_options() -> None:
    names = {o.name for o in catalog.options(catalog.DEFAULT)}
    assert {
        "cpu",
        "gpu:NVIDIA-A100-SXM4-80GB",
        "gpu:NVIDIA-H100-80GB-HBM3",
        "gpu:NVIDIA-L4",
        "gpu:Tesla-T4",
        "mig:1g.10gb",
        "mig:2g.20gb",
        "mig:3g.40gb",
        "mig:7g.80gb",
    } == names
    slice_ = catalog.find(catalog.DEFAULT, "mig:1g.10gb")
    assert slice_ is not None
    assert slice_.resource == "nvidia.com/mig-1g.10gb"
    assert slice_.memory_bytes == 10 * 2**30
    assert catalog.find(catalog.DEFAULT, "cpu-4") == catalog.find(catalog.DEFAULT, "cpu")


def test_catalog_file_is_the_charts_catalog_mapping() -> None:
    text = """
currency: EUR
cpu: {costPerCoreHour: 0.04, costPerGiBHour: 0.005}
gpus:
  - {product: NVIDIA-L4, memoryGiB: 24, costPerHour: 0.8}
  - product: NVIDIA-A100-SXM4-80GB
    memoryGiB: 80
    costPerHour: 3.5
    migProfiles:
      - {profile: 1g.10gb, memoryGiB: 10, costPerHour: 0.5}
  - product: NVIDIA-H100-80GB-HBM3
    memoryGiB: 80
    costPerHour: 7
    relativeSpeed: 2.5
    migProfiles:
      - {profile: 1g.10gb, memoryGiB: 10, costPerHour: 1.0}
"""
    parsed = catalog.parse(text)
    assert parsed.currency == "EUR"
    assert parsed.cpu.cost_per_gib_hour == 0.005
    options = {o.name: o for o in catalog.options(parsed)}
    assert list(options) == [
        "cpu",
        "gpu:NVIDIA-L4",
        "gpu:NVIDIA-A100-SXM4-80GB",
        "gpu:NVIDIA-H100-80GB-HBM3",
        "mig:1g.10gb",
    ]
    # One resource nvidia.com/mig-1g.10gb: the cheapest product prices it.
    assert options["mig:1g.10gb"].price_per_hour == 0.5
    assert options["mig:1g.10gb"].relative_speed == pytest.approx(1 / 7)
    assert options["gpu:NVIDIA-L4"].relative_speed == 0.4  # built-in figure
    assert options["gpu:NVIDIA-H100-80GB-HBM3"].relative_speed == 2.5  # declared
    # A file holding the whole values key is accepted too.
    assert catalog.parse("catalog:\n" + "\n".join("  " + line for line in text.splitlines()))


def test_the_charts_values_catalog_parses() -> None:
    values = pathlib.Path(__file__).parents[3] / "charts" / "tideserve" / "values.yaml"
    if not values.exists():
        pytest.skip("no chart")
    parsed = catalog.Catalog.model_validate(yaml.safe_load(values.read_text())["catalog"])
    assert any(o.kind is catalog.Kind.MIG for o in catalog.options(parsed))


def test_catalog_default_round_trips_through_yaml() -> None:
    assert catalog.parse(yaml.safe_dump(catalog.DEFAULT.dump())) == catalog.DEFAULT


def test_catalog_refuses_unknown_keys_and_duplicates() -> None:
    with pytest.raises(pydantic.ValidationError):
        catalog.parse("gpus: [{product: X, memoryGiB: 1, costPerHour: 1, colour: red}]")
    with pytest.raises(pydantic.ValidationError, match="repeated"):
        catalog.parse(
            "gpus: [{product: X, memoryGiB: 1, costPerHour: 1},"
            " {product: X, memoryGiB: 2, costPerHour: 2}]"
        )


def test_load_without_a_file_is_the_default() -> None:
    assert catalog.load("") is catalog.DEFAULT


def test_replica_price_adds_cpu_and_memory() -> None:
    cpu = catalog.find(catalog.DEFAULT, "cpu")
    assert cpu is not None
    price = catalog.replica_price(catalog.DEFAULT, cpu, 2, 4 * 2**30)
    rates = catalog.DEFAULT.cpu
    assert price == pytest.approx(2 * rates.cost_per_core_hour + 4 * rates.cost_per_gib_hour)


def test_a_broken_catalog_file_is_a_value_error(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "catalog.yaml"
    bad.write_text("gpus: [unclosed")
    with pytest.raises(ValueError, match="not YAML"):
        catalog.load(str(bad))
