"""Build docs/report.md and docs/charts/*.png from the runs in results/ (and results/raw/).

    python -m analysis [--results results] [--raw results/raw] [--docs docs] [--readme README.md]

`--results` holds the runs kept in git (`<run>.json.gz`, see `analysis.compact`), `--raw`
the raw runs measured here and not kept (yet). Of each kind of run the report is built on
the newest that follows its documented protocol (analysis.protocols); any other run is
listed, marked, with its duration and size, and never judged against the targets. Nothing
in `--results` or `--raw` is changed; the command says which files it wrote.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.charts import CHARTS, draw_all
from analysis.dataset import LOAD_HISTORY_RUNS, DatasetError, all_runs
from analysis.protocols import conformance, select
from analysis.report import readme_summary, render, summary_rows, update_readme
from analysis.series import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="directory of kept runs")
    parser.add_argument("--raw", default=None,
                        help="also read the raw runs here (results/raw: measured, not kept)")
    parser.add_argument("--docs", default="docs", help="where report.md and charts/ go")
    parser.add_argument("--readme", default="",
                        help="also refresh the figures between the report markers in this file")
    args = parser.parse_args(argv)
    results, docs = Path(args.results), Path(args.docs)
    if not results.is_dir():
        print(f"analysis: no results directory {results}", file=sys.stderr)
        return 2
    directories = [results, *([Path(args.raw)] if args.raw else [])]
    try:
        runs = all_runs(*directories)
    except (DatasetError, OSError, ValueError) as exc:
        print(f"analysis: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(f"analysis: no runs in {' or '.join(map(str, directories))} (run "
              "`make run-tests-local`, `make loadtest` or `make concurrency-sweep` first); the "
              "report was left as it is", file=sys.stderr)
        return 2
    selection = select(runs)
    history = tuple(conformance(run) for run in runs
                    if (run.kind, run.env) == ("load", "local"))[-LOAD_HISTORY_RUNS:]
    comparison = build(selection, history)
    for check in selection.chosen.values():
        if not check.follows:
            print(f"analysis: no {check.run.kind} run follows its protocol; using "
                  f"{check.run.name}, marked as such ({check.describe()})", file=sys.stderr)
    for check in selection.others:
        if not check.follows:
            print(f"analysis: {check.run.name} is listed, not used: {check.describe()}")
    columns, rows = summary_rows(comparison)
    report = docs / "report.md"
    outputs = [report, *(docs / "charts" / name for name in CHARTS)]
    before = {path: _bytes(path) for path in outputs}
    draw_all(comparison, docs / "charts", rows, columns)
    report.write_text(render(comparison, charts_rel="charts"))
    used = ", ".join(check.run.path.name for check in selection.chosen.values())
    changed = [str(path) for path in outputs if _bytes(path) != before[path]]
    print(f"analysis: from {used}: " + (f"changed {', '.join(changed)}" if changed else
                                         f"{report} and its charts are unchanged"))
    if args.readme:
        readme = Path(args.readme)
        text = _bytes(readme)
        if not readme.exists() or not update_readme(readme, readme_summary(comparison)):
            print(f"analysis: {readme} has no report markers; left unchanged", file=sys.stderr)
        elif _bytes(readme) != text:
            print(f"analysis: changed the figures between the report markers in {readme}")
        else:
            print(f"analysis: the figures in {readme} are unchanged")
    return 0


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
