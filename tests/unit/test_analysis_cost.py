"""Cost arithmetic: per-million-file prices from usage, checked by hand."""

from __future__ import annotations

import pytest

from analysis import cost
from analysis.dataset import Sample

PRICES = cost.Prices(
    region="test", taken="2026-01-01", source="test", lambda_request=0.20 / 1e6,
    lambda_gb_second=0.0000166667, sqs_request=0.40 / 1e6, s3_put=0.005 / 1000,
    s3_get=0.0004 / 1000, ddb_write_unit=0.625 / 1e6, ddb_read_unit=0.125 / 1e6,
    s3_gb_month=0.023, ddb_gb_month=0.25,
)


def test_billed_duration_rounds_each_invocation_up_to_a_millisecond() -> None:
    assert cost.billed_ms([0.2, 1.0, 1.01, 9.5]) == pytest.approx((1 + 1 + 2 + 10) / 4)
    with pytest.raises(ValueError):
        cost.billed_ms([])


def test_write_units_are_whole_kilobytes() -> None:
    assert cost.write_units(1) == 1
    assert cost.write_units(1024) == 1
    assert cost.write_units(1025) == 2
    assert cost.write_units(2900) == 3


def test_cost_per_million_files_by_hand() -> None:
    usage = cost.FileUsage(trigger_ms=20, worker_ms=50, trigger_memory_mb=256,
                           worker_memory_mb=1024, file_bytes=150_000, record_bytes=2_500)

    estimate = cost.estimate(usage, PRICES)

    by_item = {line.item: line.cost for line in estimate.lines}
    assert by_item["Lambda requests"] == pytest.approx(0.40)
    # 0.25 GB x 0.02 s + 1 GB x 0.05 s = 0.055 GB-s per file
    assert by_item["Lambda compute"] == pytest.approx(0.055 * 1e6 * 0.0000166667)
    assert by_item["SQS requests"] == pytest.approx(1.20)
    assert by_item["S3 PUT"] == pytest.approx(5.00)
    assert by_item["S3 GET"] == pytest.approx(0.40)
    # 2 small writes + a 2,500-byte record (3 WRU) = 5 WRU per file
    assert by_item["DynamoDB writes"] == pytest.approx(5 * 0.625)
    assert "DynamoDB reads" not in by_item
    assert estimate.per_million == pytest.approx(sum(by_item.values()))
    assert estimate.per_file == pytest.approx(estimate.per_million / 1e6)


def test_storage_is_priced_separately_for_its_retention() -> None:
    usage = cost.FileUsage(trigger_ms=1, worker_ms=1, trigger_memory_mb=128,
                           worker_memory_mb=128, file_bytes=1024 ** 3 // 1_000_000,
                           record_bytes=2048)

    estimate = cost.estimate(usage, PRICES)

    s3, ddb = estimate.storage
    assert s3.quantity == pytest.approx(1.0, rel=1e-3)
    assert s3.cost == pytest.approx(0.023, rel=1e-3)
    assert ddb.quantity == pytest.approx(2048 * 1e6 / 1024 ** 3 * 7 / 30)


def test_usage_comes_from_measured_records() -> None:
    def sample(processing: float, trigger_gap_ms: float, record_bytes: int) -> Sample:
        start = 1_800_000_000.0
        uploaded = start + 0.010
        created = uploaded + trigger_gap_ms / 1000
        return Sample(
            run_id="r", kind="protocol", env="local", phase="measure", users=1, seq=1,
            size_label="1000 lines", lines=1000, bytes=150_000, outcome="completed", reason="",
            start_epoch=start, upload_ms=10.0, e2e_ms=200.0, polls=4, uploaded_at=None,
            created_at=created, started_at=created + 0.01,
            completed_at=created + 0.01 + processing / 1000, processing_time_ms=processing,
            attempts=1, record_bytes=record_bytes)

    usage = cost.usage_from_samples([sample(9.2, 4.5, 2000), sample(11.0, 6.0, 2600),
                                     sample(10.1, 5.5, 2100)],
                                    trigger_memory_mb=256, worker_memory_mb=1769)

    assert usage is not None
    assert usage.worker_ms == pytest.approx((10 + 11 + 11) / 3)
    assert usage.trigger_ms == pytest.approx((5 + 6 + 6) / 3)
    assert usage.record_bytes == 2100
    assert usage.file_bytes == 150_000
    assert usage.worker_memory_mb == 1769
    assert cost.usage_from_samples([], trigger_memory_mb=1, worker_memory_mb=1) is None
