"""The pure core: rules, decoding, statistics, records. No boto3, no Chalice, no I/O."""
