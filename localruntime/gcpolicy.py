"""Keep the garbage collector's full passes short in long-running processes.

A full collection scans every tracked object. The endpoint holds every bucket, object,
message and item as Python objects, and a load generator holds SDK models, so a full
pass grows with the process (about 100 ms after a minute under load) and stalls every
request in flight. What survives a full collection is moved out of the collector's
sight (`gc.freeze`); later passes scan only what is newer. Objects frozen that way are
still freed when their last reference goes; only reference cycles among them are kept.
"""

from __future__ import annotations

import gc


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def keep_full_collections_short() -> None:
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)
