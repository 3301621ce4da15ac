"""Analysis of load-test results: statistics, charts, cost, and docs/report.md."""
