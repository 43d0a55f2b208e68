"""Live tensor bytes of the code run under a dispatch mode: what a device's allocator would
hold, for real or fake tensors alike.

Why our own tracker rather than ``torch.distributed._tools.mem_tracker.MemTracker``: that
tool is private and experimental, attributes memory per module (which needs module hooks
we do not want in the planned step) and its categories (parameters, gradients, optimizer
state) come from hooks into the optimizer too. All `asnet plan` needs is the peak of the
bytes alive, including tensors autograd saves and gradients the engine creates: every one
of them is the output of an ATen op, so one dispatch mode that registers each new storage
(with a weakref finalizer that subtracts it when the storage dies) sees them all.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages alive that were made under it; `peak` is their maximum.

    Storages are counted once however many tensors view them (keyed by the storage's data
    pointer identity, i.e. the storage object). Tensors created before the mode was entered
    can be counted with :meth:`track`. Use under ``FakeTensorMode`` for a run that allocates
    nothing: fake storages carry the real sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen: dict[int, int] = {}  # id of a live storage -> its bytes

    def reset_peak(self) -> None:
        """Start a new peak from the bytes alive now."""
        self.peak = self.current

    def track(self, *tensors: Any) -> None:
        """Count tensors (or nested structures of them) made outside the mode."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)

    def _add(self, t: torch.Tensor) -> None:
        try:
            storage = t.untyped_storage()
        except (NotImplementedError, RuntimeError):  # e.g. sparse or nested tensors: none we use
            return
        key = id(storage)
        if key in self._seen:
            return
        nbytes = storage.nbytes()
        self._seen[key] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.current -= self._seen.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's protocol)
        out = func(*args, **(kwargs or {}))
        self.track(out)
        return out
