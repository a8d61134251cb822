"""An LRU cache of style targets (feature statistics), so a popular style costs nothing after its first job."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import torch

# (style pixels hash, layers, pooling, weights id, device)
GramKey = tuple[str, tuple[str, ...], str, int, str]


class GramCache:
    """Least-recently-used map from a style image's exact pixels to its Gram matrices."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[GramKey, dict[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        pixels: torch.Tensor,
        layers: tuple[str, ...],
        pooling: str,
        model: torch.nn.Module,
        masks: torch.Tensor | None = None,
    ) -> GramKey:
        """The key of a (1, 3, h, w) style tensor: its bytes and size, its region masks, layers, pooling, network."""
        digest = hashlib.sha256(pixels.detach().float().cpu().numpy().tobytes())
        digest.update(str(tuple(pixels.shape)).encode())
        if masks is not None:  # the same style with another label gives other region statistics
            digest.update(b"masks")
            digest.update(masks.detach().float().cpu().numpy().tobytes())
            digest.update(str(tuple(masks.shape)).encode())
        return digest.hexdigest(), layers, pooling, id(model), str(pixels.device)

    def get(self, key: GramKey) -> dict[Any, Any] | None:
        """The cached Grams, marking them recently used; None on a miss."""
        with self._lock:
            grams = self._entries.get(key)
            if grams is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return grams

    def put(self, key: GramKey, grams: dict[Any, Any]) -> None:
        """Store Grams, evicting the least recently used past max_entries."""
        with self._lock:
            self._entries[key] = grams
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
