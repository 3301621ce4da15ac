"""Load tests: Locust users, the sequential comparison protocol, and the local runtime wrapper."""
