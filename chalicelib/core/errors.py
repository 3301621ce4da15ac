"""The pipeline's exceptions. Catch `PipelineError` to catch them all."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class for every error raised by chalicelib."""


class JobRejected(PipelineError):
    """The file cannot be processed at all; the job ends `failed` with this reason.

    `code` is one of: too_large, not_found, unsupported_type, unreadable, changed,
    retries_exhausted (docs/spec.md, "Failure reasons").
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


class Unreadable(JobRejected):
    """The bytes cannot be decoded (corrupt or truncated gzip, unreadable file)."""

    def __init__(self, message: str) -> None:
        super().__init__("unreadable", message)


class ConfigurationError(PipelineError):
    """Required settings are missing or invalid."""


class BadMessage(PipelineError):
    """A queue message is not a job; it is retried and ends in the dead-letter queue."""


class Deferred(PipelineError):
    """A job cannot finish in this invocation through no fault of its file; it is handed on."""
