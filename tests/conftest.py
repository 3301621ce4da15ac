import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# In-process moto answers as the endpoint does for a provisioned (TLS-only, versioned) bucket.
from localruntime.motopatches import apply_in_process  # noqa: E402

apply_in_process()
