"""An LRU cache of style Gram targets, so a popular style costs nothing after its first job."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch

# (style pixels hash, layers, pooling, weights id, device)
GramKey = tuple[str, tuple[str, ...], str, int, str]


class GramCache:
    """Least-recently-used map from a style image's exact pixels to its Gram matrices."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[GramKey, dict[str, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(pixels: torch.Tensor, layers: tuple[str, ...], pooling: str, model: torch.nn.Module) -> GramKey:
        """The key of a (1, 3, h, w) style tensor: its bytes and size, layers, pooling, network."""
        digest = hashlib.sha256(pixels.detach().float().cpu().numpy().tobytes())
        digest.update(str(tuple(pixels.shape)).encode())
        return digest.hexdigest(), layers, pooling, id(model), str(pixels.device)

    def get(self, key: GramKey) -> dict[str, torch.Tensor] | None:
        """The cached Grams, marking them recently used; None on a miss."""
        with self._lock:
            grams = self._entries.get(key)
            if grams is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return grams

    def put(self, key: GramKey, grams: dict[str, torch.Tensor]) -> None:
        """Store Grams, evicting the least recently used past max_entries."""
        with self._lock:
            self._entries[key] = grams
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
