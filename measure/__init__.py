"""What the tools (`loadtest`, `bench`, `analysis`, `soak`) share to measure the pipeline:
the host a run happened on, the payloads, one upload's end-to-end time, percentiles.
The tools import the product and this package, never each other."""
