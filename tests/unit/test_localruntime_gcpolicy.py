"""Survivors of a full collection leave the collector's sight; garbage is still freed."""

from __future__ import annotations

import gc
import weakref

from localruntime import gcpolicy


class Node:
    pass


def test_full_collections_freeze_what_survives_and_still_free_garbage() -> None:
    try:
        gcpolicy.keep_full_collections_short()
        gcpolicy.keep_full_collections_short()
        assert gc.callbacks.count(gcpolicy._freeze_survivors) == 1
        gc.unfreeze()
        kept = [[] for _ in range(1000)]
        gc.collect()
        assert gc.get_freeze_count() >= len(kept)

        cycle = Node()
        cycle.self = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None
    finally:
        gc.callbacks.remove(gcpolicy._freeze_survivors)
        gc.unfreeze()
