"""The report's charts, drawn with matplotlib's Agg renderer (no display needed)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from analysis import stats
from analysis.protocols import mode, pace_of
from analysis.seed import SEED_PROTOCOL
from analysis.series import (
    TARGET_P99_MS,
    TARGET_THROUGHPUT,
    Comparison,
    Series,
)
from measure.stats import percentile

CHARTS = (
    "latency_comparison.png", "percentile_comparison.png", "latency_by_filesize.png",
    "component_breakdown.png", "latency_timeline.png", "summary_table.png",
    "throughput_error_comparison.png", "throughput_vs_concurrency.png",
)
SEED_COLOR = {"local": "#9e9e9e", "aws": "#616161"}
OURS_COLOR = {"protocol-local": "#1f77b4", "load-local": "#2ca02c",
              "protocol-aws": "#ff7f0e", "load-aws": "#d62728"}
COMPONENT_COLOR = {"upload": "#4c72b0", "trigger": "#dd8452", "queue": "#55a868",
                   "worker": "#c44e52", "observe": "#8172b3"}
SIZE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _figure(width: float = 10, height: float = 5.5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _log_axis(ax: Axes, axis: str = "y") -> None:
    """Log scale with plain numbers (1,000 rather than 10^3) on the ticks."""
    plain = FuncFormatter(lambda value, _: f"{value:,.4g}")
    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target.set_major_formatter(plain)
    target.set_minor_formatter(FuncFormatter(
        lambda value, _: f"{value:,.4g}" if str(f"{value:.1g}")[0] in "25" else ""))


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11,
            transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _ours(comparison: Comparison) -> list[tuple[str, Series]]:
    return [(key, s) for key, s in comparison.series.items() if s.summary is not None]


def _caption(fig: Figure, series: list[Series], *, seed: bool = True,
             extra: tuple[str, ...] = ()) -> None:
    """Under every chart: each run drawn, its date and how its files were sent."""
    lines = [s.caption for s in series]
    if seed:
        lines.append(f"seed: the Go pipeline's published figures (its report, another "
                     f"machine; {SEED_PROTOCOL})")
    lines.extend(extra)
    fig.supxlabel("\n".join(lines), fontsize=7, color="#444444", ha="center")


def latency_comparison(comparison: Comparison, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    ours = _ours(comparison)
    positions = list(range(1, len(ours) + 1))
    if ours:
        box = ax.boxplot([s.ok_latencies for _, s in ours], positions=positions, widths=0.5,
                         whis=(1, 99), showfliers=True, patch_artist=True)
        for patch, (key, _) in zip(box["boxes"], ours, strict=True):
            patch.set_facecolor(OURS_COLOR.get(key, "#1f77b4"))
            patch.set_alpha(0.6)
    labels = [s.name.replace(", ", "\n", 1) for _, s in ours]
    for offset, (env, seed) in enumerate(comparison.seed.items(), start=len(ours) + 1):
        ax.vlines(offset, seed.p50, seed.p99, color=SEED_COLOR[env], linewidth=6, alpha=0.5)
        ax.plot([offset], [seed.p50], marker="_", markersize=30, color="black")
        ax.plot([offset], [seed.p95], marker="_", markersize=18, color=SEED_COLOR[env])
        positions.append(offset)
        labels.append(f"seed: {seed.label}\n(published P50-P99)")
    ax.set_xticks(positions, labels, fontsize=8)
    _log_axis(ax)
    ax.set_ylabel("end-to-end latency (ms, log scale)")
    ax.set_title("End-to-end latency, upload to result record "
                 "(boxes: P25-P75, whiskers P1-P99)")
    ax.grid(axis="y", which="both", alpha=0.3)
    _caption(fig, [s for _, s in ours])
    fig.savefig(path)


def _bar_labels(ax: Axes, bars: object, fmt: str = "{:,.0f}") -> None:
    ax.bar_label(bars, labels=[fmt.format(b.get_height()) for b in bars],  # type: ignore[attr-defined]
                 fontsize=7, padding=2)


def percentile_comparison(comparison: Comparison, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    groups: list[tuple[str, list[float], str]] = [
        (f"seed: {seed.label}", [seed.p50, seed.p95, seed.p99], SEED_COLOR[env])
        for env, seed in comparison.seed.items()]
    for key, s in _ours(comparison):
        summary = s.summary
        assert summary is not None
        groups.append((s.name, [summary.p50, summary.p95, summary.p99],
                       OURS_COLOR.get(key, "#1f77b4")))
    width = 0.8 / len(groups)
    for i, (name, values, color) in enumerate(groups):
        xs = [x + (i - (len(groups) - 1) / 2) * width for x in range(3)]
        bars = ax.bar(xs, values, width=width, label=name, color=color)
        _bar_labels(ax, bars)
    ax.set_xticks(range(3), ["P50", "P95", "P99"])
    _log_axis(ax)
    ax.set_ylim(top=max(v for _, values, _ in groups for v in values) * 4)
    ax.set_ylabel("end-to-end latency (ms, log scale)")
    ax.set_title("Latency percentiles (nearest rank): this pipeline vs the Go seed")
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    ax.grid(axis="y", which="both", alpha=0.3)
    _caption(fig, [s for _, s in _ours(comparison)])
    fig.savefig(path)


def latency_by_filesize(comparison: Comparison, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    ours = _ours(comparison)
    if not ours:
        _no_data(ax, "no runs yet: `make run-tests-local`, `make loadtest`")
        fig.savefig(path)
        return
    for key, s in ours:
        groups = stats.by_size(s.samples)
        sizes = [n for n, g in groups.items() if stats.e2e_values(g)]
        p50 = [percentile(stats.e2e_values(groups[n]), 50) for n in sizes]
        p95 = [percentile(stats.e2e_values(groups[n]), 95) for n in sizes]
        color = OURS_COLOR.get(key, "#1f77b4")
        ax.plot(sizes, p50, marker="o", color=color, label=f"{s.name}: P50")
        ax.plot(sizes, p95, marker="^", linestyle="--", color=color, label=f"{s.name}: P95")
        worker = [statistics.fmean(p) for n in sizes
                  if (p := [x.processing_time_ms for x in groups[n]
                            if x.ok and x.processing_time_ms is not None])]
        if len(worker) == len(sizes):
            ax.plot(sizes, worker, marker="s", linestyle=":", color=color,
                    label=f"{s.name}: worker processing (mean)")
    _log_axis(ax, "x")
    _log_axis(ax)
    ax.set_xlabel("file size (lines, log scale)")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("Latency by file size")
    ax.legend(fontsize=7)
    ax.grid(which="both", alpha=0.3)
    _caption(fig, [s for _, s in ours], seed=False)
    fig.savefig(path)


def component_breakdown(comparison: Comparison, path: Path) -> None:
    fig = _figure(11, 6)
    left, right = fig.subplots(1, 2, width_ratios=(1, 1))
    rows: list[tuple[str, dict[str, float]]] = []
    for seed in comparison.seed.values():
        rows.append((f"seed: {seed.label}", {"upload": seed.upload_ms, "worker": seed.lambda_ms,
                                             "seed: SQS + overhead": seed.sqs_overhead_ms}))
    ours = [(s.name, b.mean) for _, s in comparison.series.items()
            if (b := s.breakdown) is not None]
    rows.extend(ours)
    colors = {**COMPONENT_COLOR, "seed: SQS + overhead": "#bdbdbd"}
    for ax, subset, title in ((left, rows, "all (linear scale)"),
                              (right, ours, "this pipeline only")):
        if not subset:
            _no_data(ax, "no result records with timestamps yet")
            continue
        names = [name.replace(", ", "\n", 1) for name, _ in subset]
        drawn: set[str] = set()
        for y, (_, parts) in enumerate(subset):
            start = 0.0
            for component, value in parts.items():
                label = None if component in drawn else component
                drawn.add(component)
                ax.barh(y, value, left=start, color=colors[component], label=label)
                start += value
            ax.text(start, y, f" {start:,.0f} ms", va="center", fontsize=8)
        ax.set_yticks(range(len(subset)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("mean ms per file")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="lower right")
        ax.margins(x=0.2)
    fig.suptitle("Where the end-to-end time goes (measured from the result record's timestamps)")
    _caption(fig, [s for s in comparison.series.values() if s.breakdown is not None])
    fig.savefig(path)


def latency_timeline(comparison: Comparison, path: Path) -> None:
    fig = _figure(11, 6)
    top, bottom = fig.subplots(2, 1)
    protocol = comparison.get("protocol-local") or comparison.get("protocol-aws")
    if protocol is None:
        _no_data(top, "no sequential run: `make run-tests-local`")
    else:
        samples = sorted([*protocol.warmups, *protocol.samples], key=lambda s: s.seq)
        for i, lines in enumerate(sorted({s.lines for s in samples})):
            chosen = [s for s in samples if s.lines == lines and s.measured]
            top.plot([s.seq for s in chosen], [s.e2e_ms for s in chosen], "o",
                     color=SIZE_COLORS[i % len(SIZE_COLORS)], label=f"{lines} lines")
        warm = [s for s in samples if not s.measured]
        if warm:
            top.plot([s.seq for s in warm], [s.e2e_ms for s in warm], "x", color="black",
                     markersize=9, label="warm-up")
        top.set_xlabel("test number")
        top.set_ylabel("e2e (ms)")
        top.set_title(f"{protocol.name}: every file in order (cold start = first files)")
        top.legend(fontsize=7, ncols=4)
        top.grid(alpha=0.3)
    load = comparison.get("load-local") or comparison.get("load-aws")
    if load is None or not load.samples:
        _no_data(bottom, "no load run: `make loadtest`")
    else:
        t0 = min(s.start_epoch for s in load.samples)
        ok = [s for s in load.samples if s.ok]
        bad = [s for s in load.samples if not s.ok]
        bottom.plot([s.end_epoch - t0 for s in ok], [s.e2e_ms for s in ok], ".",
                    markersize=2, alpha=0.4, color="#2ca02c", label="file (completed)")
        if bad:
            bottom.plot([s.end_epoch - t0 for s in bad], [s.e2e_ms for s in bad], "x",
                        color="red", label="failed")
        seconds = int(max(s.end_epoch for s in load.samples) - t0) + 1
        per_second: list[list[float]] = [[] for _ in range(seconds)]
        for s in ok:
            per_second[int(s.end_epoch - t0)].append(s.e2e_ms)
        xs = [i + 0.5 for i, v in enumerate(per_second) if v]
        bottom.plot(xs, [percentile(v, 50) for v in per_second if v], color="black",
                    linewidth=1, label="P50 per second")
        bottom.plot(xs, [percentile(v, 99) for v in per_second if v], color="#d62728",
                    linewidth=1, label="P99 per second")
        highest = max(s.e2e_ms for s in load.samples)
        if load.follows_protocol:
            bottom.set_ylim(0, max(highest, TARGET_P99_MS) * 1.3)
            bottom.axhline(TARGET_P99_MS, color="#d62728", linestyle=":", linewidth=1,
                           label=f"target: P99 <= {TARGET_P99_MS:g} ms (judged on this run)")
        bottom.set_xlabel("seconds since the first upload")
        bottom.set_ylabel("e2e (ms)")
        bottom.set_title(f"{load.name}: latency over the run")
        bottom.legend(fontsize=7, ncols=3)
        bottom.grid(alpha=0.3)
    _caption(fig, [s for s in (protocol, load) if s is not None], seed=False)
    fig.savefig(path)


def summary_table(comparison: Comparison, path: Path, rows: list[list[str]],
                  columns: list[str]) -> None:
    fig = _figure(11, 0.9 + 0.32 * len(rows))
    ax = fig.add_subplot()
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=columns, loc="center", cellLoc="right",
                     colLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.25)
    for (row, col), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#dfe6ee")
            cell.set_text_props(weight="bold")
        if col == 0:
            cell.set_text_props(ha="left")
    ax.set_title("Summary: this pipeline vs the Go seed's published figures")
    _caption(fig, [s for s in comparison.series.values() if s.samples])
    fig.savefig(path)


def throughput_error_comparison(comparison: Comparison, path: Path) -> None:
    """Sequential throughput (the seed's formula) and throughput under load, never on one
    axis: the first is the inverse of a file's latency, the second a rate capped by what
    the users offer. Failed files get a panel only when some file failed."""
    sequential = [(f"seed:\n{seed.label}", seed.throughput, SEED_COLOR[env],
                   100.0 * seed.failures / seed.tests) for env, seed in comparison.seed.items()]
    under_load: list[tuple[str, float, str, float, float | None]] = []
    for key, s in comparison.series.items():
        if not s.samples:
            continue
        failed = 100.0 * stats.error_rate(list(s.samples))
        label = s.name.replace(", ", "\n")
        if s.kind == "protocol":
            sequential.append((label, s.throughput, OURS_COLOR.get(key, "#1f77b4"), failed))
        else:
            pace = pace_of(s.conformance.run)
            offered = s.users / pace if pace else None
            under_load.append((label, s.throughput, OURS_COLOR.get(key, "#2ca02c"),
                               failed, offered))
    sweep = comparison.sweep
    points = stats.concurrency_curve(sweep.measured) if sweep else []
    if points:
        best = max(points, key=lambda p: p.throughput)
        under_load.append((f"closed loop:\npeak of the sweep\n({best.users} users)",
                           best.throughput, "#9467bd",
                           100.0 * best.failures / best.files if best.files else 0.0, None))
    any_failed = any(row[3] for row in [*sequential, *under_load])
    fig = _figure(12 if any_failed else 11, 5.5)
    panels = fig.subplots(1, 3 if any_failed else 2, width_ratios=(1, 1, 1)[:3 if any_failed
                                                                             else 2])
    left, right = panels[0], panels[1]
    names = [row[0] for row in sequential]
    bars = left.bar(range(len(names)), [row[1] for row in sequential],
                    color=[row[2] for row in sequential])
    _bar_labels(left, bars, "{:,.2f}")
    left.set_xticks(range(len(names)), names, fontsize=7)
    _log_axis(left)
    left.set_ylabel("files/s (log scale)")
    left.set_title("Sequential, one file at a time:\nfiles / sum of their latencies "
                   "(the seed's formula)", fontsize=9)
    if under_load:
        names = [row[0] for row in under_load]
        bars = right.bar(range(len(names)), [row[1] for row in under_load],
                         color=[row[2] for row in under_load])
        _bar_labels(right, bars, "{:,.1f}")
        for i, row in enumerate(under_load):
            if row[4] is not None:
                right.hlines(row[4], i - 0.4, i + 0.4, color="black", linestyle="--",
                             label="offered by the paced users")
        load = comparison.get("load-local")
        if load is not None and load.follows_protocol:
            right.axhline(TARGET_THROUGHPUT, color="#d62728", linestyle=":", linewidth=1,
                          label=f"target: {TARGET_THROUGHPUT:g} files/s (judged on the paced "
                                "run)")
        right.set_xticks(range(len(names)), names, fontsize=7)
        right.set_ylabel("files/s")
        right.set_ylim(0, max(row[1] for row in under_load) * 1.3)
        if right.get_legend_handles_labels()[0]:
            right.legend(fontsize=7, loc="upper left")
    else:
        _no_data(right, "no load run: `make loadtest`, `make concurrency-sweep`")
    right.set_title("Under load: files completed / wall clock\n(paced: capped by the offered "
                    "rate; closed loop: as fast as it goes)", fontsize=9)
    if any_failed:
        rows = [*sequential, *under_load]
        bars = panels[2].bar(range(len(rows)), [row[3] for row in rows],
                             color=[row[2] for row in rows])
        _bar_labels(panels[2], bars, "{:.1f}%")
        panels[2].set_xticks(range(len(rows)), [row[0] for row in rows], fontsize=6)
        panels[2].set_ylabel("failed files (%)")
        panels[2].set_title("Failed files", fontsize=9)
        fig.suptitle("Throughput and failed files")
    else:
        fig.suptitle("Throughput (no file failed in any run shown, so no error-rate panel)")
    extra = ((f"closed loop: run {sweep.name}, {sweep.started:%Y-%m-%d}, {mode(sweep)}",)
             if points and sweep else ())
    _caption(fig, [s for s in comparison.series.values() if s.samples], extra=extra)
    fig.savefig(path)


def throughput_vs_concurrency(comparison: Comparison, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    points = stats.concurrency_curve(comparison.sweep.samples) if comparison.sweep else []
    if not points:
        _no_data(ax, "no concurrency sweep: `make concurrency-sweep`")
        fig.savefig(path)
        return
    users = [p.users for p in points]
    ax.plot(users, [p.throughput for p in points], marker="o", color="#1f77b4",
            label="throughput (files/s)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(users, [str(u) for u in users])
    ax.set_xlabel("concurrent users (closed loop, no think time)")
    ax.set_ylabel("files/s")
    right = ax.twinx()
    right.plot(users, [p.p50 for p in points], marker="s", color="#2ca02c", label="P50 (ms)")
    right.plot(users, [p.p99 for p in points], marker="^", color="#d62728", label="P99 (ms)")
    right.set_ylabel("end-to-end latency (ms)")
    right.set_ylim(bottom=0)
    ax.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_title("Throughput and latency vs concurrency (local runtime, closed loop: no "
                 "targets here,\nthey are judged on the paced load run)", fontsize=10)
    sweep = comparison.sweep
    if sweep is not None:
        conformance = comparison.sweep_conformance
        note = "" if conformance is None or conformance.follows else \
            f"; {conformance.describe()}"
        fig.supxlabel(f"run {sweep.name}, {sweep.started:%Y-%m-%d}, {mode(sweep)}{note}",
                      fontsize=7, color="#444444")
    fig.savefig(path)


Drawer = Callable[[Comparison, Path], None]


def draw_all(comparison: Comparison, directory: Path, table_rows: list[list[str]],
             table_columns: list[str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Drawer] = {
        "latency_comparison.png": latency_comparison,
        "percentile_comparison.png": percentile_comparison,
        "latency_by_filesize.png": latency_by_filesize,
        "component_breakdown.png": component_breakdown,
        "latency_timeline.png": latency_timeline,
        "summary_table.png": lambda c, p: summary_table(c, p, table_rows, table_columns),
        "throughput_error_comparison.png": throughput_error_comparison,
        "throughput_vs_concurrency.png": throughput_vs_concurrency,
    }
    paths = []
    for name in CHARTS:
        path = directory / name
        drawers[name](comparison, path)
        paths.append(path)
    return paths
