"""The style-Gram LRU cache: a second job with the same style reuses its targets, same result."""

from __future__ import annotations

import torch

from impasto.worker.engine import GramCache, StyleParams, stylize


def test_second_run_hits_the_cache_and_paints_the_same(images) -> None:  # type: ignore[no-untyped-def]
    """Same style twice: one miss then one hit, and bit-identical output to an uncached run."""
    params = StyleParams(size=32, iterations=3)
    cache = GramCache()
    first = stylize(images["content"], [images["style"]], params, gram_cache=cache)
    second = stylize(images["content"], [images["style"]], params, gram_cache=cache)
    uncached = stylize(images["content"], [images["style"]], params)
    assert (cache.misses, cache.hits) == (1, 1)
    assert first.image.tobytes() == second.image.tobytes() == uncached.image.tobytes()


def test_least_recently_used_entry_is_evicted() -> None:
    """Past max_entries the oldest key goes."""
    cache = GramCache(max_entries=2)
    grams = {"conv1_1": torch.zeros(1)}
    keys = [(str(i), ("conv1_1",), "max", 0, "cpu") for i in range(3)]
    for key in keys:
        cache.put(key, grams)
    assert cache.get(keys[0]) is None and cache.get(keys[2]) is grams
