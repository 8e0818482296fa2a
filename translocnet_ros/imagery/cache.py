"""Tile caches: a thread-safe in-memory LRU in front of an optional on-disk store of the raw tile bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path


class LruCache:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class DiskCache:
    """Raw tile bytes under <root>/<z>/<x>/<y>; written atomically so a crash never leaves half a tile."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, z: int, x: int, y: int) -> Path:
        return self.root / str(z) / str(x) / str(y)

    def get(self, z: int, x: int, y: int) -> bytes | None:
        p = self._path(z, x, y)
        try:
            return p.read_bytes()
        except OSError:
            return None

    def put(self, z: int, x: int, y: int, data: bytes) -> None:
        p = self._path(z, x, y)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(p)
