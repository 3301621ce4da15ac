"""Functional core of the log pipeline: decoding, validation, aggregation, records.

Nothing here imports boto3 or Chalice; storage adapters take injected clients.
"""
