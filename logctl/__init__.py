"""Operator tools for the log pipeline: provisioning, uploads, results, DLQ."""
