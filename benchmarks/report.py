"""Tables of results: per app and scenario, ratios against the targets, statement counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from benchmarks.load import Sample
from benchmarks.scenarios import Scenario
from benchmarks.statements import Count

READ_TARGET = 2.0
WRITE_TARGET = 1.5
CURSOR_TARGET = 1.5
BASELINE = "hand-written"
REFERENCE = "near-limit"


@dataclass(frozen=True)
class Summary:
    """The rounds of one app on one scenario: medians across rounds."""

    scenario: str
    target: str
    samples: tuple[Sample, ...]

    @property
    def rps(self) -> float:
        return median(sample.rps for sample in self.samples)

    @property
    def rps_spread(self) -> float:
        """(max - min) / median of the rounds' req/s: how steady the measurement was."""
        values = [sample.rps for sample in self.samples]
        return (max(values) - min(values)) / self.rps if self.rps else 0.0

    @property
    def p50(self) -> float:
        return median(sample.p50_ms for sample in self.samples)

    @property
    def p99(self) -> float:
        return median(sample.p99_ms for sample in self.samples)

    @property
    def cpu_us(self) -> float:
        return median(sample.server_cpu_us for sample in self.samples)

    @property
    def failures(self) -> int:
        return sum(sample.failures for sample in self.samples)


def results_table(scenarios: Sequence[Scenario], summaries: dict[tuple[str, str], Summary]) -> str:
    lines = [
        "| scenario | app | req/s | spread | p50 ms | p99 ms | server CPU us/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for (name, target), summary in summaries.items():
            if name != scenario.name:
                continue
            lines.append(
                f"| {scenario.title} | {target} | {summary.rps:,.0f} | "
                f"{summary.rps_spread:.0%} | {summary.p50:.2f} | {summary.p99:.2f} | "
                f"{summary.cpu_us:,.0f} | {summary.failures} |"
            )
    return "\n".join(lines)


def ratio_table(
    scenarios: Sequence[Scenario], summaries: dict[tuple[str, str], Summary], crudkits: list[str]
) -> str:
    """crudkit against the hand-written app, by req/s and by server CPU per request.

    The CPU ratio (hand-written CPU/req over crudkit's) is what the req/s ratio would
    be on an otherwise idle machine: it does not move when other work steals time.
    """
    header = " | ".join(f"{name}: req/s ratio | {name}: CPU ratio" for name in crudkits)
    lines = [
        f"| scenario | {header} | target | {BASELINE} / {REFERENCE} (req/s) |",
        "|---|" + "---:|" * (2 * len(crudkits) + 2),
    ]
    for scenario in scenarios:
        baseline = summaries.get((scenario.name, BASELINE))
        reference = summaries.get((scenario.name, REFERENCE))
        if baseline is None:
            continue
        target = WRITE_TARGET if scenario.is_write else READ_TARGET
        cells = []
        for name in crudkits:
            summary = summaries.get((scenario.name, name))
            if summary is None:
                cells += ["-", "-"]
                continue
            cells.append(_verdict(summary.rps / baseline.rps, target))
            cpu = baseline.cpu_us / summary.cpu_us if summary.cpu_us else 0.0
            cells.append(_verdict(cpu, target))
        context = f"{baseline.rps / reference.rps:.2f}x" if reference else "-"
        lines.append(f"| {scenario.title} | {' | '.join(cells)} | >= {target}x | {context} |")
    return "\n".join(lines)


def _verdict(ratio: float, target: float) -> str:
    if not ratio:
        return "-"
    return f"{ratio:.2f}x ({'met' if ratio >= target else f'short {target / ratio:.1f}x'})"


def depth_table(summaries: dict[tuple[str, str], Summary], crudkit: str) -> str:
    """crudkit's deep pages against its own first page (latency, one connection)."""
    first = summaries.get(("first_page", crudkit))
    if first is None:
        return ""
    lines = ["| crudkit page | p50 ms | / first page | target |", "|---|---:|---:|---|"]
    for name, title in (
        ("first_page", "first page"),
        ("offset_page", "offset 900,000"),
        ("cursor_page", "cursor at 900,000"),
    ):
        summary = summaries.get((name, crudkit))
        if summary is None:
            continue
        ratio = summary.p50 / first.p50
        target = ""
        if name == "cursor_page":
            target = f"<= {CURSOR_TARGET}x ({'met' if ratio <= CURSOR_TARGET else 'missed'})"
        lines.append(f"| {title} | {summary.p50:.2f} | {ratio:.2f}x | {target} |")
    return "\n".join(lines)


def counts_table(counts: Sequence[Count]) -> str:
    lines = [
        "| scenario | app | round trips | SQL statements | what went over the wire |",
        "|---|---|---:|---:|---|",
    ]
    for count in counts:
        lines.append(
            f"| {count.scenario} | {count.app} | {len(count.trips)} | {count.statements} | "
            f"{' · '.join(count.trips)} |"
        )
    return "\n".join(lines)
