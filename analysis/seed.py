"""Published figures of the Go pipeline this project is compared against (its report, 2025-12-01).

Only the numbers that report prints; nothing here is measured by this project.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedFigures:
    label: str
    p50: float
    p95: float
    p99: float
    mean: float
    throughput: float
    failures: int
    tests: int
    upload_ms: float
    lambda_ms: float
    sqs_overhead_ms: float
    component_total_ms: float


SEED = {
    "local": SeedFigures(
        label="Go on LocalStack", p50=1114, p95=1385, p99=1389, mean=1195, throughput=0.84,
        failures=0, tests=32, upload_ms=31, lambda_ms=2, sqs_overhead_ms=1194,
        component_total_ms=1227,
    ),
    "aws": SeedFigures(
        label="Go on AWS", p50=1954, p95=2803, p99=2867, mean=2031, throughput=0.49,
        failures=0, tests=32, upload_ms=439, lambda_ms=77, sqs_overhead_ms=1541,
        component_total_ms=2057,
    ),
}
SEED_REPORT = ("\"Event-Driven Processing Pipeline: LocalStack vs AWS Analysis\", "
               "A. Miranda, CS6650, 2025-12-01")
SEED_HOST = "Apple M4 Pro, 24 GB RAM (LocalStack in Docker)"
SEED_POLL_INTERVAL_MS = 250
SEED_COST_PER_FILE_USD = 0.00002
SEED_PROTOCOL = "2 warm-up files, then 10 iterations x 3 sizes (100, 500, 1000 lines), sequential"
