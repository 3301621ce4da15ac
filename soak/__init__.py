"""The soak test: a mixed, hostile workload through a local runtime with faults injected,
then a reconciliation of every upload against its record (see docs/guarantees.md)."""
