"""Trace loaders by format family: any file of a family loads, whatever its name."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import pytest

from tideserve.sim import traces, workloads

pytestmark = pytest.mark.unit


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_request_rows_with_iso_times_work_and_endpoints(tmp_path: pathlib.Path) -> None:
    body = "gmt_create,exec_time_seconds,checkpoint_model_version_id\n"
    body += "2024-11-15 16:00:10,30,M1\n2024-11-15 16:00:20,10,M2\n2024-11-16 17:00:00,20,M1\n"
    path = _write(tmp_path / "other_alibaba_trace.csv.gz", body)
    got = traces.load(str(path), seed=1)
    assert got.family == "requests" and got.work_column == "exec_time_seconds"
    assert [len(t.arrivals) for t in got.traces] == [2, 1]  # M1 busiest first
    # Time 0 is the whole hour before the first request: the time of day is kept.
    assert got.traces[0].arrivals[0] == pytest.approx(10.0)
    assert got.traces[0].work is not None and got.traces[0].work.mean() == pytest.approx(1.25)
    # A window of days, from the trace's first hour.
    one = traces.load(str(path), seed=1, days="0:1")
    assert sum(len(t.arrivals) for t in one.traces) == 2


def test_azure_llm_and_burstgpt_style_rows(tmp_path: pathlib.Path) -> None:
    llm = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    llm += "2023-11-16 18:15:46.6805900,10,100\n2023-11-16 18:15:47.1000000,10,300\n"
    got = traces.load(str(_write(tmp_path / "AzureLLMInferenceTrace_conv.csv", llm)), seed=1)
    assert len(got.traces) == 1 and got.traces[0].arrivals[1] - got.traces[0].arrivals[0] > 0.4
    burst = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
    burst += "5.0,ChatGPT,10,20,30,Conversation log\n7.5,GPT-4,10,40,50,Conversation log\n"
    got = traces.load(str(_write(tmp_path / "BurstGPT_2.csv", burst)) + "::by=none", seed=1)
    assert len(got.traces) == 1 and list(got.traces[0].arrivals) == [5.0, 7.5]
    assert workloads.trace_model("auto", got.family, got.work_column) == "llm-small"


def test_azure_functions_2021_rows_arrive_at_end_minus_duration(tmp_path: pathlib.Path) -> None:
    body = "app,func,end_timestamp,duration\n"
    body += "a1,f1,10.5,0.5\na1,f2,20.0,5.0\na1,f1,30.25,0.25\na2,f3,40.0,\n"
    body += "a3,f4,0.2,1.0\n"  # began before the clock's 0: outside the trace
    path = _write(tmp_path / "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt", body)
    got = traces.load(str(path), seed=1)
    assert got.family == "requests" and got.work_column == "duration"
    # Endpoints by function, not by app; a missing duration counts as 0.
    assert [list(t.arrivals) for t in got.traces] == [[10.0, 30.0], [15.0], [40.0]]
    assert (
        "`end_timestamp` in s - `duration` in s (end time minus duration)" in got.note
        and "(1 began before the clock's 0: left out)" in got.note
    )
    # An end time alone is the arrival, and the note says so.
    ends = traces.load(str(_write(tmp_path / "ends.csv", "end_time,x\n5,1\n7,1\n")), seed=1)
    assert list(ends.traces[0].arrivals) == [5.0, 7.0] and "no duration column" in ends.note


def test_end_minus_duration_says_the_durations_unit(tmp_path: pathlib.Path) -> None:
    got = traces.load(
        str(_write(tmp_path / "a.csv", "end_timestamp,duration_ms\n10.5,500\n")), seed=1
    )
    assert "`end_timestamp` in s - `duration_ms` in ms (from its name)" in got.note
    got = traces.load(
        str(_write(tmp_path / "b.csv", "end_time,duration\n10500,500\n")) + "::unit=ms", seed=1
    )
    assert "`end_time` in ms (::unit=ms) - `duration` in ms (the clock's)" in got.note
    # The unit option of a date-time clock is its durations'; the note says so.
    body = "end_time,duration\n2024-01-01 00:00:10,500\n2024-01-01 00:00:20,1000\n"
    got = traces.load(str(_write(tmp_path / "c.csv", body)) + "::unit=ms", seed=1)
    assert list(got.traces[0].arrivals) == [9.5, 19.0]
    assert "`duration` in ms (::unit=ms: of durations only, the times being date-times)" in got.note
    # Most requests beginning before a relative clock's 0: the units do not match.
    body = "end_timestamp,duration\n10.5,500\n20,700\n30,1\n"  # durations in ms
    with pytest.raises(
        ValueError,
        match=r"d.csv: time `end_timestamp` in s - `duration` in s \(end time minus duration\) "
        r"is before the clock's 0 for 2 of 3 requests: the two columns' units do not match",
    ):
        traces.load(str(_write(tmp_path / "d.csv", body)), seed=1)


@pytest.mark.parametrize(
    "time_col",
    ["arrival_timestamp", "ArrivalTime", "created_at", "Request_Time", "START_TIMESTAMP"],
)
def test_column_names_are_matched_whatever_their_case(
    tmp_path: pathlib.Path, time_col: str
) -> None:
    body = f"{time_col},Model_Name,Output_Tokens\n3,m1,10\n4,m2,30\n6,m1,20\n"
    got = traces.load(str(_write(tmp_path / "t.csv", body)), seed=1)
    assert [list(t.arrivals) for t in got.traces] == [[3.0, 6.0], [4.0]]
    assert f"`{time_col}`" in got.note and got.work_column == "Output_Tokens"
    assert workloads.trace_model("auto", got.family, got.work_column) == "llm-small"
    # The older names keep their rank: `timestamp` before `created_at`.
    both = "created_at,timestamp\n100,1\n"
    assert traces.load(str(_write(tmp_path / "b.csv", both)), seed=1).traces[0].arrivals[0] == 1


def test_a_column_named_exactly_beats_one_matched_by_key(tmp_path: pathlib.Path) -> None:
    # `datetime` is a time column as written; `Time` (time of day) only by its key.
    body = "datetime,Time,x\n2024-01-01 00:00:10,00:00:10,1\n2024-01-01 00:00:20,00:00:20,1\n"
    got = traces.load(str(_write(tmp_path / "d.csv", body)), seed=1)
    assert list(got.traces[0].arrivals) == [10.0, 20.0] and "time `datetime`" in got.note
    # `latency` is a work column as written; `Duration` only by its key.
    body = "time,Duration,latency\n1,5,0.1\n2,5,0.3\n"
    got = traces.load(str(_write(tmp_path / "w.csv", body)), seed=1)
    assert got.work_column == "latency" and got.traces[0].work is not None
    assert list(got.traces[0].work) == pytest.approx([0.5, 1.5])


def test_output_tokens_are_the_work_before_a_latency(tmp_path: pathlib.Path) -> None:
    body = "Request_ID,Arrival_Time_s,Prompt_Tokens,Completion_Tokens,Latency_ms\n"
    body += "r1,1.0,100,10,900\nr2,2.0,100,30,300\n"
    got = traces.load(str(_write(tmp_path / "llm.csv", body)), seed=1)
    assert got.work_column == "Completion_Tokens" and got.traces[0].work is not None
    assert list(got.traces[0].work) == pytest.approx([0.5, 1.5])
    assert workloads.trace_model("auto", got.family, got.work_column) == "llm-small"


@pytest.mark.parametrize("name", ["trace.jsonl", "trace.jsonl.gz"])
def test_json_lines_rows_plain_or_gzip(tmp_path: pathlib.Path, name: str) -> None:
    body = '{"timestamp": 1.5, "input_length": 1000, "output_length": 200, "hash_ids": [1]}\n'
    body += "\n" + '{"timestamp": 3.0, "input_length": 10, "output_length": 600, "hash_ids": []}\n'
    got = traces.load(str(_write(tmp_path / name, body)), seed=1)
    assert got.family == "requests" and list(got.traces[0].arrivals) == [1.5, 3.0]
    # The output's length is the work, not the prompt's; lists (hash_ids) are left out.
    assert got.work_column == "output_length" and got.traces[0].work is not None
    assert list(got.traces[0].work) == [0.5, 1.5]
    assert workloads.trace_model("auto", got.family, got.work_column) == "llm-small"


def test_json_lines_header_is_every_key_of_the_first_objects(tmp_path: pathlib.Path) -> None:
    # The first object has no time and no output length; later ones do.
    body = '{"input_length": 5}\n{"timestamp": 2, "output_length": 10}\n'
    body += '{"timestamp": 3, "output_length": 30, "extra": 1}\n'
    got = traces.load(str(_write(tmp_path / "t.jsonl", body)), seed=1)
    assert list(got.traces[0].arrivals) == [2.0, 3.0] and got.work_column == "output_length"
    assert "; rows left out: 1 without a `timestamp`" in got.note


def test_rows_without_a_time_are_counted_in_the_note(tmp_path: pathlib.Path) -> None:
    got = traces.load(str(_write(tmp_path / "t.csv", "time,x\n1,a\n,b\n2,c\n,d\n")), seed=1)
    assert list(got.traces[0].arrivals) == [1.0, 2.0]
    assert "; rows left out: 2 without a `time`" in got.note
    got = traces.load(str(_write(tmp_path / "s.csv", "time,count\n0,6\n,6\n60,6\n")), seed=1)
    assert got.family == "per-minute-long" and "; rows left out: 1 without a `time`" in got.note
    # Nothing left out, nothing said.
    got = traces.load(str(_write(tmp_path / "u.csv", "time,x\n1,a\n")), seed=1)
    assert "left out" not in got.note


def test_a_name_prefix_finds_json_lines_and_text_files(tmp_path: pathlib.Path) -> None:
    _write(tmp_path / "mooncake_notes.md", "timestamp\n1\n")  # not a trace file
    _write(tmp_path / "mooncake_trace.jsonl", '{"timestamp": 2}\n{"timestamp": 4}\n')
    got = traces.load("mooncake", seed=1, directory=tmp_path)
    assert got.name == "mooncake_trace" and list(got.traces[0].arrivals) == [2.0, 4.0]
    _write(tmp_path / "AzureFunctions2021.txt", "app,func,end_timestamp,duration\na,f,3,1\n")
    assert traces.resolve("AzureFunctions", tmp_path).name == "AzureFunctions2021.txt"


MOONCAKE = "".join(
    f'{{"timestamp": {ms}, "input_length": 1000, "output_length": 200, "hash_ids": [1, 2]}}\n'
    for ms in (0, 226, 3_600_000)
)


def test_mooncake_milliseconds_with_the_unit_option(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "mooncake_trace.jsonl", MOONCAKE)
    got = traces.load(str(path) + "::unit=ms", seed=1)
    assert list(got.traces[0].arrivals) == pytest.approx([0.0, 0.226, 3600.0])
    assert "in ms (::unit=ms)" in got.note and "say ::unit=ms" not in got.note


def test_whole_numbers_that_look_like_milliseconds_are_pointed_out(tmp_path: pathlib.Path) -> None:
    # Read as seconds (nothing says otherwise), not guessed: the note says what to do.
    got = traces.load(str(_write(tmp_path / "mooncake_trace.jsonl", MOONCAKE)), seed=1)
    assert got.traces[0].arrivals[-1] == 3_600_000.0
    assert (
        "; `timestamp` holds whole numbers from 0 spanning 41.7 days if read as seconds; if "
        "they are ms, us or ns, say ::unit=ms (or us, ns)" in got.note
    )
    # BurstGPT's clock is whole seconds from 0 over 61 days: the same note, in words that do
    # not say it is wrong (it is not: following a note that said "milliseconds" would
    # replay 61 days in 1.5 hours).
    burst = "Timestamp,Model,Response tokens\n0,ChatGPT,10\n5270400,GPT-4,20\n"
    got = traces.load(str(_write(tmp_path / "BurstGPT_1.csv", burst)) + "::by=none", seed=1)
    assert list(got.traces[0].arrivals) == [0.0, 5_270_400.0] and "`Timestamp` in s," in got.note
    assert "spanning 61 days if read as seconds; if they are ms, us or ns" in got.note
    # Not for a short relative clock, nor for an absolute one in whole seconds.
    for name, body in (("short.csv", "timestamp\n1\n2\n"), ("epoch.csv", "ts\n1.7e9\n1.703e9\n")):
        got = traces.load(str(_write(tmp_path / name, body)), seed=1)
        assert "::unit=ms" not in got.note and "in s" in got.note


@pytest.mark.parametrize(
    ("column", "scale"), [("timestamp_ms", 1e3), ("TIME_US", 1e6), ("Arrival Time (ns)", 1e9)]
)
def test_the_unit_from_the_column_name(tmp_path: pathlib.Path, column: str, scale: float) -> None:
    body = f"{column}\n{1.0 * scale:.0f}\n{2.5 * scale:.0f}\n"
    got = traces.load(str(_write(tmp_path / "t.csv", body)), seed=1)
    assert list(got.traces[0].arrivals) == pytest.approx([1.0, 2.5])
    assert "(from its name)" in got.note
    # A duration is in the clock's unit unless its own name says otherwise.
    ends = "end_timestamp,duration,latency_ms\n10500,500,7\n"
    got = traces.load(str(_write(tmp_path / "e.csv", ends)) + "::unit=ms", seed=1)
    assert list(got.traces[0].arrivals) == [10.0]
    ends = "end_timestamp,duration_ms\n10.5,500\n"
    assert traces.load(str(_write(tmp_path / "f.csv", ends)), seed=1).traces[0].arrivals[0] == 10


@pytest.mark.parametrize(("unit", "scale"), [("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_the_unit_of_an_epoch_clock_from_its_magnitude(
    tmp_path: pathlib.Path, unit: str, scale: float
) -> None:
    # 1.7e9 s is 2023-11-14 22:13:20 UTC: time 0 is 22:00, so arrivals at 800 and 801.5 s.
    body = "timestamp\n" + "".join(f"{(1.7e9 + d) * scale:.0f}\n" for d in (0.0, 1.5))
    got = traces.load(str(_write(tmp_path / "epoch.csv", body)), seed=1)
    assert list(got.traces[0].arrivals) == pytest.approx([800.0, 801.5])
    assert f"in {unit} (epoch magnitude)" in got.note


def test_an_epoch_unit_is_guessed_only_for_a_date_between_2000_and_2100(
    tmp_path: pathlib.Path,
) -> None:
    # 2e11 as ms would be 1976: not taken for an epoch clock, read as seconds (time 0 the
    # whole hour before, 2,000 s before it).
    got = traces.load(str(_write(tmp_path / "t.csv", "timestamp\n2e11\n200000000005\n")), seed=1)
    assert list(got.traces[0].arrivals) == [2000.0, 2005.0] and "in s" in got.note
    # A monotonic clock in ns (3e14: 3.5 days of uptime) is not 1979 in us either; read as
    # seconds it spans years: a named error, not years of replay.
    body = "timestamp\n300000000000000\n300000500000000\n"
    with pytest.raises(ValueError, match=r"t2.csv: `timestamp` read in s spans 5.79e\+03 days"):
        traces.load(str(_write(tmp_path / "t2.csv", body)), seed=1)


@pytest.mark.parametrize("body", ["time\n0\n1e15\n", "time,count\n0,5\n1e15,3\n"])
def test_a_replay_over_400_days_is_a_unit_error(tmp_path: pathlib.Path, body: str) -> None:
    # A relative clock in us read as seconds: 3e7 years (it was a MemoryError), named with
    # the unit it was read in and the option that sets it.
    path = _write(tmp_path / "us.csv", body)
    with pytest.raises(
        ValueError, match=r"us.csv: `time` read in s spans .* days.*say ::unit=ms, us or ns;"
    ):
        traces.load(str(path), seed=1)
    # A window of it is no error: the window is what is replayed.
    assert traces.load(str(path), seed=1, days="0:1").traces[0].duration_s == 86_400.0


def test_a_per_minute_series_reads_its_unit_too(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "series.csv", "time_ms,count\n60000,5\n120000,3\n")
    got = traces.load(str(path), seed=1)
    assert got.family == "per-minute-long" and "in ms" in got.note
    assert got.traces[0].duration_s == 180.0


def test_wide_per_minute_functions_any_day_and_either_header(tmp_path: pathlib.Path) -> None:
    for cols in ([str(m) for m in range(1, 1441)], [f"{m}_minute" for m in range(1, 1441)]):
        rows = ["HashOwner,HashApp,HashFunction,Trigger," + ",".join(cols)]
        for k in range(5):
            counts = np.zeros(1440, dtype=int)
            counts[k * 60 : k * 60 + 10] = k + 1
            rows.append(f"o,a,f{k},http," + ",".join(map(str, counts)))
        path = _write(tmp_path / "invocations_per_function_md.anon.d09.csv", "\n".join(rows))
        got = traces.load(str(path) + "::endpoints=2", seed=3)
        assert got.family == "per-minute-wide"
        assert [len(t.arrivals) for t in got.traces] == [50, 40, 60]  # f4, f3, the rest
        first = got.traces[0].arrivals
        assert first.min() >= 240 * 60 and first.max() < 250 * 60


def test_long_per_minute_series_is_scaled_to_the_peak(tmp_path: pathlib.Path) -> None:
    rows = ["period,count"] + [
        f"1998-05-01 00:{m:02d}:00,{6000 if m == 30 else 600}" for m in range(60)
    ]
    path = _write(tmp_path / "some_web_trace.csv.gz", "\n".join(rows))
    got = traces.load(str(path), seed=1, max_peak_rps=10.0)
    assert got.family == "per-minute-long" and got.peak_rps == pytest.approx(100.0)
    assert got.factor == pytest.approx(0.1)
    per_min = got.traces[0].per_minute()
    assert 450 < per_min[30] < 750 and per_min[:30].mean() < 100


def test_times_not_finite_are_left_out_and_counted(tmp_path: pathlib.Path) -> None:
    body = "time,x\nnan,a\n1,b\ninf,c\n2,d\n-inf,e\n,f\n"
    got = traces.load(str(_write(tmp_path / "t.csv", body)), seed=1)
    assert list(got.traces[0].arrivals) == [1.0, 2.0]
    assert "; rows left out: 1 without a `time`, 3 whose `time` is not a finite number" in got.note
    got = traces.load(str(_write(tmp_path / "s.csv", "time,count\nNaN,5\n0,6\n")), seed=1)
    assert got.family == "per-minute-long" and "1 whose `time` is not a finite" in got.note
    body = '{"timestamp": NaN}\n{"timestamp": 1e999}\n{"timestamp": 3}\n'
    got = traces.load(str(_write(tmp_path / "j.jsonl", body)), seed=1)
    assert list(got.traces[0].arrivals) == [3.0] and "2 whose `timestamp`" in got.note


def test_a_time_that_is_not_one_is_named_by_row(tmp_path: pathlib.Path) -> None:
    body = "time,x\n1,a\nN/A,b\n"
    with pytest.raises(
        ValueError, match=r"t.csv: `time` row 2: 'N/A' is neither a number nor an ISO date-time"
    ):
        traces.load(str(_write(tmp_path / "t.csv", body)), seed=1)
    # A time of day beside a date: no column here is a date-time; said so, by row.
    body = "Date,Time,Requests\n2024-01-01,00:00:00,5\n2024-01-01,00:01:00,3\n"
    with pytest.raises(ValueError, match=r"d.csv: `Time` row 1: '00:00:00' is a time of day"):
        traces.load(str(_write(tmp_path / "d.csv", body)), seed=1)


def test_bad_files_are_named_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="no time column"):
        traces.load(str(_write(tmp_path / "x.csv", "a,b\n1,2\n")), seed=1)
    with pytest.raises(ValueError, match="no trace 'nothing-here'"):
        traces.load("nothing-here", seed=1, directory=tmp_path)
    with pytest.raises(ValueError, match="JSON array"):
        traces.load(str(_write(tmp_path / "z.json", '[{"time": 1}]')), seed=1)
    with pytest.raises(ValueError, match=r"z.jsonl:2: not JSON"):
        traces.load(str(_write(tmp_path / "z.jsonl", '{"time": 1}\n{"time": \n')), seed=1)
    with pytest.raises(ValueError, match=r"unit='min': want one of s, ms, us, ns"):
        traces.load(str(_write(tmp_path / "u.csv", "time\n1\n")) + "::unit=min", seed=1)
    with pytest.raises(ValueError, match="--days"):
        traces.load(str(_write(tmp_path / "y.csv", "time\n1\n")), seed=1, days="a:b")


def test_blank_lines_before_the_header_and_extra_fields(tmp_path: pathlib.Path) -> None:
    # The header is the first line with something on it, for the rows as for the header.
    body = "\n  \ntime,model\n1,m1\n2,m1,an extra field,another\n"
    got = traces.load(str(_write(tmp_path / "t.csv", body)), seed=1)
    assert [list(t.arrivals) for t in got.traces] == [[1.0, 2.0]] and "`model`" in got.note
    series = "\nperiod,count\n0,60\n60,120,9\n"
    got = traces.load(str(_write(tmp_path / "s.csv", series)), seed=1)
    assert got.family == "per-minute-long" and got.peak_rps == pytest.approx(2.0)


@pytest.mark.skipif(not traces.trace_dir(None).is_dir(), reason="no shipped traces here")
def test_every_shipped_file_loads_out_of_the_box() -> None:
    for name in traces.SHORT:
        wl, note = workloads.load_trace(
            name, "auto", workloads.Options(), traces.trace_dir(None), "1"
        )
        assert sum(len(t.arrivals) for t in wl.traces) > 0 and "Source:" in note


def _wide(
    tmp_path: pathlib.Path, *functions: tuple[str, list[str]], day: str = "d03"
) -> pathlib.Path:
    rows = ["HashOwner,HashApp,HashFunction,Trigger," + ",".join(map(str, range(1, 1441)))]
    for name, cells in functions:
        rows.append(f"o,a,{name},http," + ",".join(cells + ["0"] * (1440 - len(cells))))
    return _write(tmp_path / f"invocations_per_function_md.anon.{day}.csv", "\n".join(rows))


def test_per_minute_files_without_an_invocation_are_an_error_not_a_crash(
    tmp_path: pathlib.Path,
) -> None:
    path = _wide(tmp_path, ("idle", []), ("busy", ["0"] * 600 + ["5"]))
    with pytest.raises(ValueError, match=r"no invocations$"):
        traces.load(str(_wide(tmp_path, ("idle", []), day="d04")), seed=1)
    with pytest.raises(ValueError, match=r"no invocations of function idle$"):
        traces.load(str(path) + "::idle", seed=1)
    with pytest.raises(ValueError, match=r"no invocations in days 0:0\.25$"):
        traces.load(str(path), seed=1, days="0:0.25")
    assert sum(len(t.arrivals) for t in traces.load(str(path), seed=1).traces) == 5
    with pytest.raises(ValueError, match=r"no function 2 \(rows 0-1, or a name\)"):
        traces.load(str(path) + "::2", seed=1)


def test_per_minute_counts_that_are_not_counts(tmp_path: pathlib.Path) -> None:
    path = _wide(tmp_path, ("f", ["2", "nan", "-3", "inf", "", "4"]))
    got = traces.load(str(path), seed=1)
    assert sum(len(t.arrivals) for t in got.traces) == 6
    assert "; 3 counts that were NaN, infinite or negative read as 0" in got.note
    with pytest.raises(ValueError, match=r"row 1, column `3`: 'many' is not a count"):
        traces.load(str(_wide(tmp_path, ("f", ["1", "2", "many"]), day="d04")), seed=1)
    body = "period,count\n1998-05-01 00:00:00,5\n1998-05-01 00:01:00,NaN\n"
    got = traces.load(str(_write(tmp_path / "s.csv", body)), seed=1)
    assert got.family == "per-minute-long" and "; 1 counts that were NaN" in got.note
    body = "period,count\n1998-05-01 00:00:00,5\n1998-05-01 00:01:00,five\n"
    with pytest.raises(ValueError, match=r"`count` at `period` 1998-05-01 00:01:00: 'five'"):
        traces.load(str(_write(tmp_path / "s.csv", body)), seed=1)


def test_an_endpoint_named_that_is_not_there_is_an_error(tmp_path: pathlib.Path) -> None:
    body = "gmt_create,checkpoint_model_version_id\n2024-11-15 16:00:10,M1\n"
    path = str(_write(tmp_path / "t.csv", body))
    with pytest.raises(ValueError, match=r"no request of endpoint 'M9' \(column `checkpoint"):
        traces.load(path + "::M9", seed=1)
    assert len(traces.load(path + "::M1", seed=1).traces[0].arrivals) == 1
    llm = str(_write(tmp_path / "llm.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n"))
    with pytest.raises(ValueError, match=r"no column to pick endpoint 'x' by \(name one with"):
        traces.load(llm + "::x", seed=1)
    with pytest.raises(ValueError, match=r"endpoints=-1: want a whole number, 0 or more"):
        traces.load(path + "::endpoints=-1", seed=1)
