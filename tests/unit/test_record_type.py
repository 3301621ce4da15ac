"""One record type: the builders return ResultRecord's fields, and every other list of record
fields (the indexes' projection, the API's listing row, the probe's projection) names only
fields of ResultRecord."""

from __future__ import annotations

from chalicelib.apimodels import JobSummary
from chalicelib.core.errors import JobRejected
from chalicelib.core.jobs import Job
from chalicelib.core.results import (
    completed_record,
    failed_record,
    processing_record,
    queued_record,
    rejected_record,
)
from chalicelib.core.schema import RECORD_FIELDS, empty_statistics
from chalicelib.jobindex import SUMMARY_ATTRIBUTES
from measure.probe import RECORD_FIELDS as PROBED_FIELDS

JOB = Job(job_id="a" * 32, bucket="b", key="logs/a.ndjson", size=1, etag="e", version_id=None,
          uploaded_at=None, created_at="2026-11-26T12:00:00.000Z")


def test_every_builder_writes_only_fields_of_the_record_type() -> None:
    rejection = JobRejected("unreadable", "bad gzip")
    records = [queued_record(JOB), processing_record(JOB, 1.0, 1),
               rejected_record(JOB, rejection, 1.0), failed_record(JOB, rejection, 1.0, 2.0, 1),
               completed_record(JOB, empty_statistics(), 1.0, 2.0, 1, b"x")]
    for record in records:
        assert set(record) <= set(RECORD_FIELDS), set(record) - set(RECORD_FIELDS)
    assert set(records[-1]) >= set(RECORD_FIELDS) - {"last_error"}


def test_the_listing_row_the_index_projection_and_the_probe_name_record_fields() -> None:
    for names in (SUMMARY_ATTRIBUTES, tuple(JobSummary.model_fields), PROBED_FIELDS):
        assert set(names) <= set(RECORD_FIELDS), set(names) - set(RECORD_FIELDS)
    # The keys of the indexes, and `source`, which the listing derives from the key.
    assert set(JobSummary.model_fields) - {"job_id", "status", "created_at", "source"} <= set(
        SUMMARY_ATTRIBUTES)
