"""Seeded generators and the trace-file loaders."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from tideserve.sim import traces, traffic

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "make",
    [
        lambda s: traffic.diurnal(s, 24, 5.0),
        lambda s: traffic.bursty(s, 6, 20.0),
        lambda s: traffic.steps_and_spikes(s, 2, 2.0),
    ],
)
def test_generators_are_deterministic_with_a_seed(make) -> None:
    a, b, c = make(7), make(7), make(8)
    assert np.array_equal(a.arrivals, b.arrivals)
    assert not np.array_equal(a.arrivals, c.arrivals)
    assert np.all(np.diff(a.arrivals) >= 0)
    assert a.arrivals.min() >= 0 and a.arrivals.max() < a.duration_s


def test_diurnal_nights_are_silent() -> None:
    tr = traffic.diurnal(3, 24, 10.0)
    assert not np.any(tr.arrivals < 6 * 3600)
    assert len(tr.arrivals) > 100_000


def test_many_endpoints_have_heavy_tailed_popularity() -> None:
    eps = traffic.many_endpoints(2, endpoints=8, hours=6)
    counts = sorted((len(t.arrivals) for t in eps), reverse=True)
    assert counts[0] > 4 * counts[-1]
    assert [len(t.arrivals) for t in traffic.many_endpoints(2, 8, 6)] == [
        len(t.arrivals) for t in eps
    ]


def test_azure_functions_loader(tmp_path: pathlib.Path) -> None:
    head = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441))
    quiet = ["o,a,f1,http"] + ["0"] * 1440
    busy = ["o,a,f2,http"] + ["0"] * 1440
    busy[1 + 9] = "30"  # minute 10
    path = tmp_path / "invocations_per_function_md.anon.d01.csv"
    path.write_text("\n".join([head, ",".join(quiet), ",".join(busy)]) + "\n")
    tr = traces.load(f"azure-functions:{path}::f2", seed=1).traces[0]
    assert len(tr.arrivals) == 30
    assert np.all((tr.arrivals >= 540) & (tr.arrivals < 600))
    assert tr.duration_s == 86_400
    again = traces.load(f"azure-functions:{path}::f2", seed=1).traces[0]
    assert np.array_equal(tr.arrivals, again.arrivals)


def test_azure_llm_loader(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:51.2000000,879,7\n"
    )
    tr = traces.load(f"azure-llm:{path}", seed=0).traces[0]
    # Time 0 is the whole hour before the first request (18:00).
    assert tr.arrivals[0] == pytest.approx(15 * 60 + 46.68059, abs=1e-5)
    assert tr.arrivals[1] - tr.arrivals[0] == pytest.approx(4.314579, abs=1e-5)
    assert tr.work is not None and tr.work.mean() == pytest.approx(1.0, rel=0.05)


def test_burstgpt_loader(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "BurstGPT_1.csv"
    path.write_text(
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,230,1317,Conversation log\n"
        "118,ChatGPT,417,276,693,API log\n"
    )
    tr = traces.load(f"burstgpt:{path}::by=none", seed=0).traces[0]
    assert list(tr.arrivals) == [5.0, 45.0, 118.0]  # its own clock
    only = traces.load(f"burstgpt:{path}::ChatGPT", seed=0).traces
    assert len(only) == 1 and list(only[0].arrivals) == [5.0, 118.0]
