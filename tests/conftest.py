"""In-process moto answers as the endpoint does for a provisioned (TLS-only, versioned)
bucket."""

from localruntime.endpoint.motofixes import apply_in_process

apply_in_process()
