"""Build docs/report.md and docs/charts/*.png from the runs in results/.

    python -m analysis [--results results] [--docs docs]

`--results` holds compact runs (`<run>.json.gz`, see `analysis.compact`) or raw CSVs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.charts import draw_all
from analysis.dataset import LOAD_HISTORY_RUNS, DatasetError, latest_runs, runs_of
from analysis.report import readme_summary, render, summary_rows, update_readme
from analysis.series import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results", help="directory of runs (compact or raw)")
    parser.add_argument("--docs", default="docs", help="where report.md and charts/ go")
    parser.add_argument("--readme", default="",
                        help="also refresh the figures between the report markers in this file")
    args = parser.parse_args(argv)
    results, docs = Path(args.results), Path(args.docs)
    if not results.is_dir():
        print(f"analysis: no results directory {results}", file=sys.stderr)
        return 2
    try:
        runs = latest_runs(results)
        history = tuple(runs_of(results, "load", "local")[-LOAD_HISTORY_RUNS:])
    except (DatasetError, OSError, ValueError) as exc:
        print(f"analysis: {exc}", file=sys.stderr)
        return 2
    if not runs:
        print(f"analysis: no runs in {results}/ (run `make run-tests-local`, `make loadtest` "
              "or `make concurrency-sweep` first); the report was left as it is", file=sys.stderr)
        return 2
    comparison = build(runs, history)
    columns, rows = summary_rows(comparison)
    charts = draw_all(comparison, docs / "charts", rows, columns)
    report = docs / "report.md"
    report.write_text(render(comparison, charts_rel="charts"))
    used = ", ".join(run.path.name for run in runs.values())
    print(f"analysis: {report} and {len(charts)} charts in {docs / 'charts'} from {used}")
    if args.readme:
        readme = Path(args.readme)
        if not readme.exists() or not update_readme(readme, readme_summary(comparison)):
            print(f"analysis: {readme} has no report markers; left unchanged", file=sys.stderr)
        else:
            print(f"analysis: figures refreshed in {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
