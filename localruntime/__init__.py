"""Run the Chalice app locally with nothing but pip: moto as the AWS endpoint, handlers
in warm worker processes fed by Lambda-like S3 and SQS event sources.

    python -m localruntime [--port 4566] [--set KEY=VALUE ...]
"""
