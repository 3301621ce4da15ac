"""docs/report.md: the measured figures, the charts, and the comparison with the Go seed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis import cost, stats
from analysis.dataset import COMPACT_SUFFIX, LOAD_HISTORY_RUNS, Run
from analysis.protocols import window_seconds
from analysis.seed import SEED_HOST, SEED_POLL_INTERVAL_MS, SEED_PROTOCOL, SEED_REPORT
from analysis.series import (
    TARGET_LINES,
    TARGET_USERS,
    Comparison,
    Series,
    TargetCheck,
    check_targets,
    target_samples,
)
from logctl.stage import StageError, load_stage
from measure.host import describe_host
from measure.probe import Backoff
from measure.stats import percentile

CHART_TITLES = {
    "latency_comparison.png": "Latency distribution",
    "percentile_comparison.png": "Percentiles",
    "latency_by_filesize.png": "Latency by file size",
    "component_breakdown.png": "Component breakdown",
    "latency_timeline.png": "Latency timeline",
    "summary_table.png": "Summary table",
    "throughput_error_comparison.png": "Throughput and errors",
    "throughput_vs_concurrency.png": "Throughput vs concurrency",
}


def ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "n/a"
    return f"{numerator / denominator:,.1f}x"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _chart(name: str, charts_rel: str) -> str:
    return f"![{CHART_TITLES[name]}]({charts_rel}/{name})"


def summary_rows(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """The summary table (also drawn as summary_table.png)."""
    columns = ["metric"] + [f"seed: {s.label}" for s in comparison.seed.values()]
    ours = [s for s in comparison.series.values() if s.samples]
    columns += [s.name for s in ours]
    seeds = list(comparison.seed.values())

    def row(name: str, seed_values: list[str], our_values: list[str]) -> list[str]:
        return [name, *seed_values, *our_values]

    summaries = [s.summary for s in ours]
    rows = [
        row("files measured", [str(s.tests) for s in seeds], [str(len(s.samples)) for s in ours]),
        row("P50", [ms(s.p50) for s in seeds], [ms(x.p50 if x else None) for x in summaries]),
        row("P95", [ms(s.p95) for s in seeds], [ms(x.p95 if x else None) for x in summaries]),
        row("P99", [ms(s.p99) for s in seeds], [ms(x.p99 if x else None) for x in summaries]),
        row("mean", [ms(s.mean) for s in seeds], [ms(x.mean if x else None) for x in summaries]),
        row("throughput (files/s)", [f"{s.throughput:.2f}" for s in seeds],
            [f"{s.throughput:.2f}" for s in ours]),
        row("failed", [str(s.failures) for s in seeds], [str(s.failures) for s in ours]),
        row("S3 upload (mean)", [ms(s.upload_ms) for s in seeds],
            [ms(b.mean["upload"]) if (b := s.breakdown) else "n/a" for s in ours]),
        row("worker processing (mean)", [ms(s.lambda_ms) for s in seeds],
            [ms(b.processing_ms) if (b := s.breakdown) else "n/a" for s in ours]),
    ]
    return columns, rows


def _load_line(comparison: Comparison) -> str:
    run = comparison.runs.get(("load", "local"))
    pace = float((run.host.get("pace_seconds") if run else 0) or 0)
    users = run.users if run else TARGET_USERS
    sweep = ("The concurrency sweep (`make concurrency-sweep`) is a closed loop without "
             "pauses: each user uploads its next file as soon as the last one's result is "
             "in, which finds where the pipeline saturates.")
    if pace > 0:
        return (f"- Load: Locust (`loadtest/upload.py`, `make loadtest`): {users} users, each "
                f"starting a file every {pace:g} s ({users / pace:.1f} files/s offered; a file "
                "that takes longer is followed at once), uploading under `logs/` and waiting "
                f"for its result record. {sweep}")
    return ("- Load: Locust (`loadtest/upload.py`), closed loop: every user uploads a file under "
            "`logs/`, waits for its result record, and uploads the next (`make loadtest`, "
            f"`make concurrency-sweep`). {sweep}")


def _load_history(comparison: Comparison) -> list[str]:
    """Every local load run read: the machine is shared and runs differ."""
    if len(comparison.load_history) < 2:
        return []
    rows = []
    for check in comparison.load_history:
        run = check.run
        samples = [s for s in run.measured if s.lines == TARGET_LINES]
        ok = stats.e2e_values(samples)
        if not ok:
            continue
        cpu = run.host.get("cpu_check_seconds")
        pace = run.host.get("pace_seconds")
        rows.append([f"`{run.name}`{_where(run)}",
                     "yes" if check.follows else "no: " + ", ".join(check.departures),
                     f"{window_seconds(run):.0f} s", str(run.users),
                     f"{pace:g} s" if isinstance(pace, (int, float)) else "not recorded",
                     f"{cpu:.3f} s" if isinstance(cpu, (int, float)) else "not recorded",
                     f"{stats.wall_throughput(samples):.1f}",
                     ms(percentile(ok, 50)), ms(percentile(ok, 99)),
                     f"{sum(1 for s in samples if not s.ok)} of {len(samples)}"])
    return [f"The local load runs read (at most the newest {LOAD_HISTORY_RUNS}; the targets "
            "above are judged on the newest that follows the protocol). The CPU check is a "
            "timed Python loop: the machine is shared, and a slow check means a slow machine "
            "at the time.", "",
            table(["run", "protocol", "duration", "users", "pace", "CPU check", "files/s",
                   "P50", "P99", "failed"], rows), ""]


def _where(run: Run) -> str:
    """Marks a run read from results/raw/: measured here, not kept in git."""
    return "" if run.path.name.endswith(COMPACT_SUFFIX) else " (raw, not in git)"


def _other_runs(comparison: Comparison) -> list[str]:
    """Runs that do not follow their protocol and are not used: listed, never judged."""
    shown = {check.run.name for check in comparison.load_history}
    rows = [[f"`{c.run.name}`{_where(c.run)}", c.mode, c.describe()]
            for c in comparison.others if not c.follows and c.run.name not in shown]
    if not rows:
        return []
    return ["Runs that do not follow their protocol (docs/load-test.md), not used above:", "",
            table(["run", "how files were sent", "duration, files, departures"], rows), ""]


def _targets_section(checks: list[TargetCheck], comparison: Comparison) -> list[str]:
    load = comparison.get("load-local")
    judged = (f" Judged on run `{load.source}` ({load.date}; {load.conformance.mode}), the "
              "newest that follows the protocol; the latency timeline in section 2.5 draws "
              "the targets on that run." if load is not None and load.follows_protocol else "")
    out = ["## Targets", "",
           f"Local runtime, {TARGET_USERS} concurrent users, {TARGET_LINES:,}-line files "
           f"(`make loadtest`).{judged}", ""]
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    out.append(table(["target", "goal", "measured", "verdict"],
                     [[c.name, c.target, c.measured, verdict[c.met]] for c in checks]))
    out.append("")
    run = comparison.runs.get(("load", "local"))
    if run is not None and "other_mean_cores" in run.host:
        out += [f"During that run, processes outside the test (the machine is shared) used "
                f"{run.host['other_mean_cores']:.2f} of its {run.host.get('cores')} cores on "
                "average; see the CPU table in section 2.6.", ""]
    out += _load_history(comparison)
    out += _other_runs(comparison)
    if any(c.met is False for c in checks):
        breakdown = stats.breakdown(target_samples(comparison))
        if breakdown is not None:
            biggest = max(breakdown.mean, key=lambda k: breakdown.mean[k])
            share = breakdown.mean[biggest] / breakdown.total
            out += [f"Where the time goes under that load: the largest component is "
                    f"**{biggest}** ({stats.COMPONENT_HELP[biggest]}), "
                    f"{ms(breakdown.mean[biggest])} of {ms(breakdown.total)} on average "
                    f"({share:.0%}); see section 2.6.", ""]
        cpu = _cpu_per_file(comparison)
        if cpu:
            total = sum(cpu.values())
            endpoint = cpu.get("endpoint", 0.0)
            loadgen = cpu.get("load generator (Locust)", 0.0)
            cores = _load_cores(comparison)
            out += [f"The local set-up spends {ms(total)} of CPU per file: the endpoint "
                    f"(moto, one Python process) {ms(endpoint)}, the handlers and the runtime "
                    f"{ms(total - endpoint - loadgen)}, the load generator {ms(loadgen)}. At that "
                    f"cost {cores} dedicated cores carry at most {cores * 1000 / total:.0f} "
                    f"files/s, and the endpoint, which cannot use more than one core, at most "
                    f"{1000 / endpoint:.0f} files/s: on this machine the runtime is CPU-bound, "
                    "so files wait in the queue for a worker and every request waits on the "
                    "endpoint." if
                    endpoint else f"The local set-up spends {ms(total)} of CPU per file.", ""]
    return out


def _comparison_table(comparison: Comparison) -> list[str]:
    local = comparison.get("protocol-local")
    aws = comparison.get("protocol-aws")
    seed_local, seed_aws = comparison.seed["local"], comparison.seed["aws"]
    header = ["metric", "seed: LocalStack", "this: local runtime", "seed ÷ this",
              "seed: AWS", "this: AWS", "seed ÷ this"]

    def side(series: Series | None, pick: str) -> float | None:
        if series is None or series.summary is None:
            return None
        value: float = getattr(series.summary, pick)
        return value

    rows = []
    for label, pick in (("P50", "p50"), ("P95", "p95"), ("P99", "p99"), ("mean", "mean")):
        ours_l, ours_a = side(local, pick), side(aws, pick)
        seed_l, seed_a = getattr(seed_local, pick), getattr(seed_aws, pick)
        rows.append([label, ms(seed_l), ms(ours_l), ratio(seed_l, ours_l),
                     ms(seed_a), ms(ours_a), ratio(seed_a, ours_a)])
    tl = local.throughput if local else None
    ta = aws.throughput if aws else None
    rows.append(["throughput (files/s, this ÷ seed)", f"{seed_local.throughput:.2f}",
                 f"{tl:.2f}" if tl else "n/a", ratio(tl, seed_local.throughput),
                 f"{seed_aws.throughput:.2f}", f"{ta:.2f}" if ta else "n/a",
                 ratio(ta, seed_aws.throughput)])
    rows.append(["failed files", f"{seed_local.failures} of {seed_local.tests}",
                 f"{local.failures} of {len(local.samples)}" if local else "n/a", "",
                 f"{seed_aws.failures} of {seed_aws.tests}",
                 f"{aws.failures} of {len(aws.samples)}" if aws else "n/a", ""])
    return [table(header, rows), ""]


def _pipeline_only(comparison: Comparison) -> list[str]:
    """Latency up to the record's completed_at: the end-to-end time minus the observe step."""
    rows = []
    for s in comparison.series.values():
        values = [sum(v for k, v in parts.items() if k != "observe")
                  for x in s.samples if (parts := stats.components(x)) is not None]
        if values:
            summary = stats.summarize(values)
            rows.append([s.name, ms(summary.p50), ms(summary.p95), ms(summary.p99)])
    if not rows:
        return []
    return ["Without the last step (the result write and the client's next poll), from upload "
            "start to the record's `completed_at`:", "",
            table(["run", "P50", "P95", "P99"], rows), ""]


def _breakdown_table(comparison: Comparison) -> list[str]:
    rows = []
    for s in comparison.series.values():
        b = s.breakdown
        if b is None:
            continue
        rows.append([s.name, *[f"{ms(b.mean[k])} / {ms(b.median[k])}" for k in stats.COMPONENTS],
                     ms(b.total), ms(b.processing_ms)])
    if not rows:
        return ["No result records with timestamps yet.", ""]
    header = ["run", *[f"{k} (mean / median)" for k in stats.COMPONENTS], "sum (mean)",
              "processing_time_ms (mean)"]
    seed_rows = [[f"seed: {seed.label}", ms(seed.upload_ms), "(in SQS + overhead)",
                  f"SQS + overhead {ms(seed.sqs_overhead_ms)}", ms(seed.lambda_ms), "(polled "
                  f"every {SEED_POLL_INTERVAL_MS} ms)", ms(seed.component_total_ms),
                  ms(seed.lambda_ms)] for seed in comparison.seed.values()]
    return [table(header, seed_rows + rows), ""]


def _invocation_table(comparison: Comparison) -> list[str]:
    """Handler invocations as the local runtime logged them (the seed's "Lambda" time)."""
    rows = []
    for run in comparison.runs.values():
        for function in sorted({i.function for i in run.invocations}):
            calls = run.invocations_of(function)
            durations = [i.duration_ms for i in calls]
            files = sum(i.batch_size for i in calls)
            rows.append([f"`{run.name}`", function, str(len(calls)),
                         f"{files / len(calls):.2f}", ms(sum(durations) / len(durations)),
                         ms(percentile(durations, 50)), ms(percentile(durations, 99)),
                         str(sum(1 for i in calls if i.cold_start)),
                         str(sum(1 for i in calls if i.outcome != "ok"))])
    if not rows:
        return []
    return ["Handler invocations, from the local runtime's log (the seed's \"Lambda\" time; a "
            "worker invocation handles a batch of files):", "",
            table(["run", "function", "invocations", "files per call", "mean", "P50", "P99",
                   "cold starts", "not ok"], rows), ""]


def _size_table(comparison: Comparison) -> list[str]:
    rows = []
    for s in comparison.series.values():
        for lines, group in stats.by_size(s.samples).items():
            values = stats.e2e_values(group)
            if not values:
                continue
            summary = stats.summarize(values)
            processing = [x.processing_time_ms for x in group
                          if x.ok and x.processing_time_ms is not None]
            size = round(sum(x.bytes for x in group) / len(group))
            polls = sum(x.polls for x in group) / len(group)
            rows.append([s.name, f"{lines:,}", f"{size:,}",
                         str(summary.count), ms(summary.p50), ms(summary.p95), ms(summary.p99),
                         ms(sum(processing) / len(processing)) if processing else "n/a",
                         f"{polls:.1f}"])
    if not rows:
        return ["No runs yet.", ""]
    return [table(["run", "lines", "bytes", "files", "P50", "P95", "P99", "worker (mean)",
                   "result polls per file"], rows), ""]


def _load_cores(comparison: Comparison) -> int:
    run = comparison.runs.get(("load", "local"))
    return int((run.host.get("cores") if run else None) or os.cpu_count() or 1)


def _cpu_per_file(comparison: Comparison) -> dict[str, float]:
    """ms of CPU per file by process in the local load run, from its host sidecar."""
    series = comparison.get("load-local")
    run = comparison.runs.get(("load", "local"))
    if series is None or run is None or "runtime_roles_mean_cores" not in run.host:
        return {}
    throughput = series.throughput
    if throughput <= 0:
        return {}
    cores: dict[str, float] = dict(run.host["runtime_roles_mean_cores"])
    cores["load generator (Locust)"] = float(run.host.get("loadgen_mean_cores", 0.0))
    return {role: value / throughput * 1000 for role, value in cores.items()}


def _cpu_table(comparison: Comparison) -> list[str]:
    """CPU each part of the local set-up spent per file in the load run."""
    per_file = _cpu_per_file(comparison)
    series = comparison.get("load-local")
    run = comparison.runs.get(("load", "local"))
    if not per_file or series is None or run is None:
        return []
    throughput = series.throughput
    rows = [[role, f"{value * throughput / 1000:.2f}", ms(value)]
            for role, value in per_file.items()]
    total = sum(per_file.values())
    rows.append(["**all of the above**", f"{total * throughput / 1000:.2f}", ms(total)])
    rows.append(["other processes on the machine",
                 f"{float(run.host.get('other_mean_cores', 0.0)):.2f}", ""])
    return [f"CPU while the load run measured ({series.name}, {throughput:.1f} files/s; "
            f"{_load_cores(comparison)} cores; sampled once a second by `loadtest.runtime`):", "",
            table(["process", "cores (mean)", "CPU per file"], rows), ""]


def _concurrency_section(comparison: Comparison) -> list[str]:
    if comparison.sweep is None:
        return ["No concurrency sweep yet: `make concurrency-sweep`.", ""]
    points = stats.concurrency_curve(comparison.sweep.measured)
    rows = [[str(p.users), str(p.files), str(p.failures), f"{p.throughput:.1f}", ms(p.p50),
             ms(p.p99)] for p in points]
    best = max(points, key=lambda p: p.throughput)
    sizes = sorted({s.lines for s in comparison.sweep.samples})
    sweep = comparison.sweep
    marked = comparison.sweep_conformance
    note = "" if marked is None or marked.follows else f" Not the protocol: {marked.describe()}."
    return [f"Run `{sweep.name}`, measured {sweep.started:%Y-%m-%d}, closed loop: each user "
            "uploads its next file as soon as the last one's result is in; file sizes "
            f"{', '.join(map(str, sizes))} lines.{note} Each step's throughput is its completed "
            "files over the step's window (first upload to last result). The targets are not "
            "judged here but on the paced load run: back to back, N users keep N files in "
            "flight at any rate, so latency grows with the users (mean latency = users / "
            "throughput).", "",
            table(["users", "files", "failed", "files/s", "P50", "P99"], rows), "",
            f"Peak: {best.throughput:.1f} files/s at {best.users} users.", ""]


def _cost_section(comparison: Comparison) -> list[str]:
    source = next((comparison.get(k) for k in ("protocol-aws", "protocol-local", "load-local")
                   if comparison.get(k) is not None), None)
    try:
        aws = load_stage("aws")
        trigger_mb, worker_mb = aws.function_memory("trigger"), aws.function_memory("worker")
    except StageError as exc:
        return [f"No cost estimate: {exc}.", ""]
    if source is None:
        return ["No runs yet, so no measured durations to price.", ""]
    run = comparison.runs.get((source.kind, source.env))
    trigger_durations = [i.duration_ms for i in run.invocations_of("trigger")] if run else []
    trigger_note = (f"The trigger's duration is its mean logged invocation time in that run "
                    f"({len(trigger_durations)} invocations)." if trigger_durations else
                    "The trigger's duration is an upper bound (upload response to job "
                    "created, which includes S3 event delivery).")
    p = cost.PRICES
    out = [f"Prices: {p.region}, on-demand list prices taken {p.taken} from {p.source} "
           f"(no free tier): Lambda x86 ${p.lambda_gb_second:.10f}/GB-s and "
           f"${p.lambda_request * 1e6:.2f}/M requests; SQS standard "
           f"${p.sqs_request * 1e6:.2f}/M requests; S3 PUT ${p.s3_put * 1000:.4f}/1k, "
           f"GET ${p.s3_get * 1000:.4f}/1k; DynamoDB on-demand "
           f"${p.ddb_write_unit * 1e6:.3f}/M write units, "
           f"${p.ddb_read_unit * 1e6:.3f}/M read units.",
           "",
           f"Durations measured in `{source.source}` ({source.name}); memory from "
           f".chalice/config.json stage `aws`: trigger {trigger_mb} MB, worker {worker_mb} MB. "
           "Per file: 2 Lambda invocations (trigger, worker; batching up to 10 files per "
           "worker call would lower this), 3 SQS requests (send, receive, delete), 1 S3 PUT "
           "and 1 GET, DynamoDB writes: job created (1 WRU), claimed (1 WRU), result stored "
           f"(item size / 1 KB). {trigger_note} The test client's result polling is not "
           "counted.", ""]
    rows = []
    detail: cost.CostEstimate | None = None
    for lines, group in stats.by_size(source.samples).items():
        usage = cost.usage_from_samples(group, trigger_memory_mb=trigger_mb,
                                        worker_memory_mb=worker_mb,
                                        trigger_durations=trigger_durations)
        if usage is None:
            continue
        estimate = cost.estimate(usage)
        if lines == TARGET_LINES or detail is None:
            detail = estimate
        rows.append([f"{lines:,}", f"{usage.file_bytes:,}", f"{usage.record_bytes:,}",
                     f"{usage.trigger_ms:.0f} ms", f"{usage.worker_ms:.0f} ms",
                     f"${estimate.per_million:,.2f}", f"${estimate.storage_per_million:,.2f}",
                     ratio(1e6 * 0.00002, estimate.per_million)])
    if not rows or detail is None:
        return [*out, "No completed files with timestamps to price.", ""]
    out += [table(["lines", "file bytes", "record bytes", "trigger (billed)", "worker (billed)",
                   "per million files", "+ storage", "seed's $20/M ÷ this"], rows), "",
            "Itemised, for the 1,000-line files:", "",
            table(["item", "quantity per million files", "unit price", "cost"],
                  [[line.item, f"{line.quantity:,.1f} {line.unit}", f"${line.unit_price:.10f}",
                    f"${line.cost:,.4f}"] for line in (*detail.lines, *detail.storage)]),
            "", "The seed priced a file at about $0.00002 ($20 per million), counting 2 s of "
            "256 MB Lambda time per file (its end-to-end latency, not its Lambda duration).", ""]
    return out


def _aws_section(comparison: Comparison) -> list[str]:
    if comparison.get("protocol-aws") or comparison.get("load-aws"):
        return ["AWS runs are included in the tables and charts above.", ""]
    return ["**No AWS data.** No run against a deployed stack is in `results/` "
            "(`make run-tests-aws` needs AWS credentials and the stack deployed with "
            "`chalice deploy --stage aws`). The AWS columns above show the seed's published "
            "figures only; nothing here estimates this project's AWS latency.", ""]


def _host_lines(comparison: Comparison) -> list[str]:
    hosts = [(run.name, run.host) for run in comparison.runs.values() if run.host]
    current = describe_host()
    host: dict[str, Any] = hosts[-1][1] if hosts else current
    out = [f"- Machine: {host.get('cpu_model')}, {host.get('cores')} cores "
           f"(`nproc`: {os.cpu_count()} here), {host.get('memory_gib')} GiB RAM, "
           f"{host.get('os')}; Python {host.get('python')}, boto3 {host.get('boto3')}, "
           f"Locust {host.get('locust')}, moto {host.get('moto')}; commit {host.get('commit')}.",
           f"- Seed machine: {SEED_HOST}.",
           "- CPU check: before each run, a plain Python loop of 3 million additions is timed; "
           "the machine is shared, runs of the same code have differed by up to two times in "
           "latency, and the check says how fast the machine was at the time."]
    for name, info in hosts:
        check = (f"; CPU check {info['cpu_check_seconds']:.3f} s"
                 if "cpu_check_seconds" in info else "")
        if "runtime_mean_cores" in info:
            out.append(f"- `{name}` (measured {info.get('date')}{check}): the local runtime used "
                       f"{_cores(info, 'runtime')}, the load generator "
                       f"{_cores(info, 'loadgen')}, other processes "
                       f"{info.get('other_mean_cores', 0.0):.2f}, of {info.get('cores')}.")
        else:
            out.append(f"- `{name}` measured {info.get('date')}{check} against "
                       f"{info.get('endpoint')}.")
    return out


# A peak over one-second samples means something only when the window holds several.
MIN_PEAK_WINDOW_SECONDS = 5.0


def _cores(info: dict[str, Any], name: str) -> str:
    """Mean cores over the run, and the busiest one-second sample when it can be told."""
    mean = float(info[f"{name}_mean_cores"])
    peak = info.get(f"{name}_peak_cores")
    window = float(info.get("cpu_window_seconds") or 0.0)
    text = f"{mean:.2f} cores on average"
    if window < MIN_PEAK_WINDOW_SECONDS:
        return text + f" (the {window:.1f} s run is too short for a one-second peak)"
    if not isinstance(peak, (int, float)) or peak < mean:
        return text + " (no one-second peak recorded)"
    return text + f" (busiest second {peak:.2f})"


def _baseline(comparison: Comparison) -> list[str]:
    seed = comparison.seed["local"]
    return ["**What this is compared with.** \"The seed\" throughout is the Go pipeline this "
            "project re-creates: the same S3 → trigger → SQS → worker → DynamoDB pipeline with "
            "Go Lambdas, measured by its authors on LocalStack in Docker and on AWS and "
            f"published in their report ({SEED_REPORT}). Its figures are quoted from that "
            f"report, not measured here: another machine ({SEED_HOST}), its protocol "
            f"({SEED_PROTOCOL}), a client that polled DynamoDB every {SEED_POLL_INTERVAL_MS} ms, "
            "and throughput by its formula: files / the sum of their end-to-end times "
            f"(so {seed.throughput:g} files/s on LocalStack is the inverse of its mean latency, "
            "not a capacity). Only this project's sequential runs are measured the same way; "
            "its load runs (paced) and its concurrency sweep (closed loop) answer other "
            "questions and say so.", ""]


def _run_dates(comparison: Comparison) -> str:
    dates = sorted({run.started.strftime("%Y-%m-%d") for run in comparison.runs.values()})
    return ", ".join(dates) or "no runs"


def render(comparison: Comparison, charts_rel: str = "charts") -> str:
    checks = check_targets(comparison)
    backoff = Backoff()
    out = ["# Performance report: the log pipeline on Chalice", "",
           f"Written by `make report` (`python -m analysis`) from runs measured on "
           f"{_run_dates(comparison)}; regenerate it, do not edit it. Each chart and table "
           "names its run, its date, and how files were sent: **sequential** (one file at a "
           "time, the seed's protocol), **paced** (users each starting a file at a steady "
           "interval, `make loadtest`) or **closed loop** (users back to back, "
           "`make concurrency-sweep`).", ""]
    out += _baseline(comparison)
    out += _targets_section(checks, comparison)
    out += ["## 1. Set-up", ""]
    out += _host_lines(comparison)
    out += [
        f"- Protocol, as in the seed's report: {SEED_PROTOCOL} (`make run-tests-local`, "
        "`make run-tests-aws`); warm-up files are drawn in the timeline, not counted in the "
        "statistics.",
        _load_line(comparison),
        "- End-to-end latency: from the start of the S3 PutObject call to the client's first "
        "read of the record with status `completed`, by DynamoDB GetItem (consistent). The "
        "client polls around the time recent files of the same size took to complete (the "
        "lower quartile of the last 20 files' upload-to-`completed_at` times, once 5 are "
        f"known): first at that time, then every {backoff.step:.0%} of it (at least "
        f"{backoff.initial * 1000:g} ms) until {backoff.span:g} times it, then backing off "
        f"x{backoff.factor:g} up to {backoff.cap * 1000:g} ms; before that, from "
        f"{backoff.initial * 1000:g} ms, backing off the same way. The seed polled every "
        f"{SEED_POLL_INTERVAL_MS} ms, which alone adds up to 250 ms per file.",
        "- Components come from the result record's own timestamps (`uploaded_at`, "
        "`created_at`, `started_at`, `completed_at`, `processing_time_ms`) and the client's "
        "clock, so the breakdown is measured and sums to the end-to-end time.",
        "- Percentiles are exact nearest-rank over completed files; throughput of a "
        "sequential run uses the seed's formula (files / sum of their latencies), of a "
        "concurrent run the wall clock (files / first upload to last result).", ""]
    out += ["## 2. Results", "", "### 2.1 Latency distribution", "",
            _chart("latency_comparison.png", charts_rel), "",
            "### 2.2 Percentiles, against the seed's published figures", "",
            _chart("percentile_comparison.png", charts_rel), ""]
    out += _comparison_table(comparison)
    out += _pipeline_only(comparison)
    load = comparison.get("load-local")
    if load is not None and load.summary is not None:
        summary = load.summary
        seed = comparison.seed["local"]
        out += [f"Under load ({load.name}, `{load.source}`, {len(load.samples)} files): "
                f"P50 {ms(summary.p50)}, P95 {ms(summary.p95)}, P99 {ms(summary.p99)}, "
                f"{load.throughput:.1f} files/s, {load.failures} failed: "
                f"{ratio(load.throughput, seed.throughput)} the seed's LocalStack throughput "
                f"(which it measured one file at a time), with a P99 of {ms(summary.p99)} "
                f"against the seed's sequential {ms(seed.p99)}.", ""]
    out += ["### 2.3 Throughput and errors", "",
            _chart("throughput_error_comparison.png", charts_rel), "",
            "### 2.4 Latency by file size", "", _chart("latency_by_filesize.png", charts_rel), ""]
    out += _size_table(comparison)
    out += ["### 2.5 Timeline and cold start", "", _chart("latency_timeline.png", charts_rel), ""]
    out += _warmup_lines(comparison)
    out += ["### 2.6 Component breakdown", "", _chart("component_breakdown.png", charts_rel), ""]
    out += [f"- **{k}**: {stats.COMPONENT_HELP[k]}" for k in stats.COMPONENTS] + [""]
    out += _breakdown_table(comparison)
    out += _invocation_table(comparison)
    out += _cpu_table(comparison)
    out += ["### 2.7 Throughput vs concurrency", "",
            _chart("throughput_vs_concurrency.png", charts_rel), ""]
    out += _concurrency_section(comparison)
    out += ["### 2.8 Summary table", "", _chart("summary_table.png", charts_rel), ""]
    out += ["## 3. Cost per million files", ""]
    out += _cost_section(comparison)
    out += ["## 4. AWS", ""]
    out += _aws_section(comparison)
    out += ["## 5. Caveats", "",
            "- The local runtime and the load generator share this machine's cores; the "
            "CPU figures in section 1 show how much each used.",
            "- `trigger` and `observe` cross between the client's clock and the pipeline's; on "
            "one machine that is one clock, on AWS any offset moves time between them (their "
            "sum, like the total, stays exact).",
            "- The seed's figures come from its report (another machine, LocalStack in "
            "Docker, Go Lambdas); ratios compare published numbers with ours, not runs on one "
            "machine.", "",
            "## Data", "",
            "The runs used above (`make keep-results` keeps a raw run of `results/raw/`, which "
            "git ignores, as a compact file in `results/`):", ""]
    out += [f"- `{run.path.name}`{_where(run)}: {len(run.samples)} rows ({run.kind}, "
            f"{run.env}, measured {run.started:%Y-%m-%d})"
            for run in comparison.runs.values()] or ["- none"]
    return "\n".join(out) + "\n"


def _warmup_lines(comparison: Comparison) -> list[str]:
    out = []
    for s in comparison.series.values():
        if s.warmups and s.summary is not None:
            warm = ", ".join(ms(w.e2e_ms) for w in s.warmups)
            out.append(f"- {s.name}: warm-up files {warm}; measured files P50 {ms(s.summary.p50)}.")
    return [*out, ""] if out else []



README_BEGIN = "<!-- report:begin (written by `make report`) -->"
README_END = "<!-- report:end -->"


def readme_summary(comparison: Comparison) -> str:
    """The few figures the README quotes, with where and when they were measured."""
    hosts = [run.host for run in comparison.runs.values() if run.host]
    host = hosts[-1] if hosts else describe_host()
    out = [f"Figures from `make report`: {host.get('cpu_model')}, {host.get('cores')} cores, "
           f"{host.get('memory_gib')} GiB RAM; each run's date and commit are in the table; "
           "details in [docs/report.md](docs/report.md). \"Seed\" is the Go pipeline this "
           "project re-creates, as its own report published it (another machine).", ""]
    rows = []
    seed = comparison.seed["local"]
    for key in ("protocol-local", "load-local", "protocol-aws"):
        s = comparison.get(key)
        if s is None or s.summary is None:
            continue
        summary = s.summary
        commit = s.conformance.run.host.get("commit")
        rows.append([f"{s.name} ({s.date}" + (f", commit `{commit}`)" if commit else ")"),
                     ms(summary.p50), ms(summary.p95), ms(summary.p99),
                     f"{s.throughput:.2f}", f"{s.failures} of {len(s.samples)}"])
    rows.append([f"seed: {seed.label} (published)", ms(seed.p50), ms(seed.p95), ms(seed.p99),
                 f"{seed.throughput:.2f}", f"{seed.failures} of {seed.tests}"])
    out += [table(["run", "P50", "P95", "P99", "files/s", "failed"], rows), ""]
    verdict = {True: "met", False: "missed", None: "not measured"}
    out.append(f"Targets at {TARGET_USERS} users, {TARGET_LINES:,}-line files, paced: " + "; ".join(
        f"{c.name} {c.target}: {c.measured} ({verdict[c.met]})" for c in check_targets(comparison))
        + ".")
    if comparison.get("protocol-aws") is None:
        out.append("No AWS run yet (`make run-tests-aws`).")
    return "\n".join(out)


def update_readme(path: Path, summary: str) -> bool:
    """Replace the text between the report markers; False when the markers are missing."""
    text = path.read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        return False
    path.write_text(text[:start + len(README_BEGIN)] + "\n" + summary + "\n" + text[end:])
    return True
