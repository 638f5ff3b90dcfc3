"""`tideserve recommend`: right-sizing recommendations for a namespace, as a table.

By default it reads what the operator wrote (status.recommendation); with --prometheus
it computes them live from Prometheus and the cluster's nodes, writing nothing.
Monthly cost = cost per replica-hour x replicas x 730 h: before with the replicas running
now (at least one), after with the replicas the recommended option needs at peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import pydantic
import yaml

from tideserve import kubeconfig
from tideserve.api import resource
from tideserve.rightsizing import advisor, effective, fit, signals
from tideserve.rightsizing import catalog as catalog_mod

HOURS_PER_MONTH = 730.0


@dataclasses.dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    mode: str
    now: str
    recommended: str
    replicas_now: int
    replicas_after: int
    monthly_now: float | None
    monthly_after: float | None
    reason: str

    @property
    def saving(self) -> float | None:
        if self.monthly_now is None or self.monthly_after is None:
            return None
        return self.monthly_now - self.monthly_after


def row(isvc: resource.InferenceService, advice: advisor.Advice | None = None) -> Row:
    """One table row from an object (and, when computed live, its fresh advice)."""
    meta = isvc.metadata
    status = isvc.status
    rec = (
        advice.recommendation if advice is not None else (status.recommendation if status else None)
    )
    running = advisor.running_resources(isvc.spec, status) if status else isvc.spec.resources
    in_use = status.accelerator if status else None
    now = (
        f"{effective.option_name(running, in_use)} "
        f"{running.cpu or fit.DEFAULT_CPU}/{running.memory or fit.DEFAULT_MEMORY}"
    )
    replicas_now = max(1, (status.replicas or 0) if status else 0)
    if rec is None:
        return Row(
            meta.get("namespace", ""),
            meta.get("name", ""),
            isvc.spec.resources.right_sizing.mode.value,
            now,
            "-",
            replicas_now,
            replicas_now,
            None,
            None,
            "no recommendation yet",
        )
    after = rec.replicas or replicas_now
    return Row(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        mode=isvc.spec.resources.right_sizing.mode.value,
        now=now,
        recommended=f"{rec.accelerator} {rec.cpu}/{rec.memory}",
        replicas_now=replicas_now,
        replicas_after=after,
        monthly_now=(
            rec.cost_per_hour_now * replicas_now * HOURS_PER_MONTH
            if rec.cost_per_hour_now is not None
            else None
        ),
        monthly_after=(
            rec.cost_per_hour_recommended * after * HOURS_PER_MONTH
            if rec.cost_per_hour_recommended is not None
            else None
        ),
        reason=rec.reason,
    )


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.2f} {currency}"


def render(rows: Sequence[Row], currency: str, out: TextIO, wide: bool = False) -> None:
    header = [
        "NAME",
        "MODE",
        "NOW",
        "RECOMMENDED",
        "REPLICAS",
        "MONTHLY NOW",
        "MONTHLY AFTER",
        "SAVING",
    ]
    table = [header]
    for r in rows:
        table.append(
            [
                f"{r.namespace}/{r.name}",
                r.mode,
                r.now,
                r.recommended,
                f"{r.replicas_now}->{r.replicas_after}",
                _money(r.monthly_now, currency),
                _money(r.monthly_after, currency),
                _money(r.saving, currency),
            ]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        out.write("\n")
    total_now = sum(r.monthly_now or 0 for r in rows)
    total_after = sum(
        (r.monthly_after if r.monthly_after is not None else r.monthly_now or 0) for r in rows
    )
    out.write(
        f"\ntotal per month: {_money(total_now, currency)} now, "
        f"{_money(total_after, currency)} recommended "
        f"(saving {_money(total_now - total_after, currency)})\n"
    )
    if wide:
        for r in rows:
            out.write(f"\n{r.namespace}/{r.name}: {r.reason}\n")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: want a number above 0")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tideserve recommend",
        description="Print right-sizing recommendations with monthly cost before and after.",
    )
    parser.add_argument("--namespace", "-n", default=None, help="default: all namespaces")
    parser.add_argument(
        "--prometheus",
        default=None,
        help="compute live from this Prometheus URL instead of reading status (writes nothing)",
    )
    parser.add_argument(
        "--catalog",
        default=os.environ.get("TIDESERVE_CATALOG_FILE", ""),
        help="catalog YAML (default: TIDESERVE_CATALOG_FILE, else the built-in catalog)",
    )
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--output", "-o", choices=["table", "wide", "json"], default="table")
    parser.add_argument(
        "--history",
        type=_positive,
        default=signals.Window().history_seconds,
        help="seconds of usage history to read with --prometheus (default 8 days)",
    )
    parser.add_argument(
        "--step",
        type=_positive,
        default=signals.Window().step_seconds,
        help="query resolution in seconds with --prometheus (default 300)",
    )
    probe = parser.add_argument_group(
        "profiling", "measure one option instead: a load probe against a replica running on it"
    )
    probe.add_argument("--probe", metavar="HOST:PORT", help="Triton HTTP address of the replica")
    probe.add_argument("--model", help="model name to probe")
    probe.add_argument("--option", help="the replica's hardware: cpu-4, gpu:NVIDIA-L4, mig:1g.10gb")
    probe.add_argument("--latency-ms", type=_positive, default=None, help="p99 target (SLO)")
    probe.add_argument("--seconds", type=_positive, default=5.0, help="per concurrency level")
    return parser.parse_args(argv)


def main_probe(args: argparse.Namespace) -> int:
    """Print the measured profile as the measured-profiles annotation's JSON."""
    if not (args.model and args.option):
        print("tideserve recommend --probe needs --model and --option", file=sys.stderr)
        return 2
    from tideserve.rightsizing import loop, profiling  # noqa: PLC0415

    profile, levels = profiling.probe(
        args.probe, args.model, args.option, args.latency_ms, seconds=args.seconds
    )
    for lv in levels:
        print(
            f"concurrency {lv.concurrency}: {lv.rps:.1f} rps, p99 {lv.p99_ms:.1f} ms, "
            f"{lv.errors} errors",
            file=sys.stderr,
        )
    if profile is None:
        print("no level met the latency target", file=sys.stderr)
        return 1
    value = json.dumps(profiling.annotation([profile]))
    print(f"kubectl annotate inferenceservice <name> {loop.PROFILES_ANNOTATION}='{value}'")
    return 0


def main_recommend(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.probe:
        return main_probe(args)
    # The client is imported here so that `--help` does not pay for it.
    from tideserve import kube  # noqa: PLC0415

    try:
        catalog = catalog_mod.load(args.catalog)
    except (OSError, pydantic.ValidationError, ValueError, yaml.YAMLError) as exc:
        print(f"tideserve recommend: bad catalog {args.catalog}: {exc}", file=sys.stderr)
        return 2
    try:
        kube.configure(args.kubeconfig)
    except kubeconfig.NoCluster as exc:
        print(f"tideserve recommend: {exc}", file=sys.stderr)
        return 1
    try:
        bodies = kube.list_objects(resource.KIND, args.namespace)
    except Exception as exc:
        print(f"tideserve recommend: cannot list InferenceServices: {exc}", file=sys.stderr)
        return 1
    objects: list[tuple[dict[str, Any], resource.InferenceService]] = []
    for body in bodies:
        try:
            objects.append((body, resource.InferenceService.model_validate(body)))
        except pydantic.ValidationError:
            continue
    advices: dict[tuple[str, str], advisor.Advice] = {}
    if args.prometheus:
        try:
            advices = live(kube, catalog, args, objects)
        except Exception as exc:  # Prometheus or the API server unreachable, or refusing
            print(
                f"tideserve recommend: cannot compute live from {args.prometheus}: {exc}",
                file=sys.stderr,
            )
            return 1
    rows = [row(isvc, advices.get(_key(isvc))) for _, isvc in objects]
    if args.output == "json":
        payload = [dataclasses.asdict(r) | {"saving": r.saving} for r in rows]
        print(json.dumps({"currency": catalog.currency, "endpoints": payload}, indent=2))
    else:
        render(rows, catalog.currency, sys.stdout, wide=args.output == "wide")
    return 0


def _key(isvc: resource.InferenceService) -> tuple[str, str]:
    return (str(isvc.metadata.get("namespace")), str(isvc.metadata.get("name")))


def live(
    kube: Any,
    catalog: catalog_mod.Catalog,
    args: argparse.Namespace,
    objects: list[tuple[dict[str, Any], resource.InferenceService]],
) -> dict[tuple[str, str], advisor.Advice]:
    from tideserve.rightsizing import loop  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC)
    node_bodies = kube.list_objects("Node")
    nodes = [fit.node_from_api(n) for n in node_bodies]
    pods = kube.list_objects("Pod", args.namespace, loop.PREDICTOR_LABELS)
    prometheus = signals.Prometheus(args.prometheus)
    try:
        window = signals.Window(history_seconds=args.history, step_seconds=args.step)
        observations = signals.gather(
            prometheus, now.timestamp(), window, loop.host_cores_lookup(pods, node_bodies)
        )
    finally:
        prometheus.close()
    return {
        _key(isvc): advisor.advise(
            isvc.spec,
            isvc.status,
            observations.get(_key(isvc), advisor.Observation()),
            catalog,
            nodes=nodes,
            now=now,
            measured=loop.measured_profiles(body),
        )
        for body, isvc in objects
    }


def main(argv: list[str]) -> int:
    return main_recommend(argv)
