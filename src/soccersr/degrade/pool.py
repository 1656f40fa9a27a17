"""The training-pair pool: mixes degradations drawn for different batches.

One degradation draw resizes a whole batch by the same factor, so batches lack diversity. The
pool (official ``_dequeue_and_enqueue``, queue size 180) keeps earlier pairs and hands them out
in exchange for new ones. Unlike the official pool, the size need not be a multiple of the batch
size and a short last batch is fine: each incoming pair either fills a free slot (and goes
straight through to training, as while the official queue fills) or swaps with a random stored
pair, distinct slots within a batch. Swapping with random distinct slots is what the official
shuffle-then-take-the-first-b does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class TrainingPairPool:
    """A pool of (lq, gt) training pairs on the device of the first batch pushed.

    The pool keeps lq and gt only; recompute the USM-sharpened GT after ``exchange`` (the
    official model does the same).
    """

    def __init__(self, size: int = 180, *, seed: int = 0, gt_channels: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"pool size must be positive, got {size}")
        self.size = size
        self.gt_channels = gt_channels
        """When set, the GT channels a restored pool must have (3, or 4 with player masks): a resume that
        switches the masks on or off fails here, by name, not at the first exchange."""
        self._generator = torch.Generator().manual_seed(seed)
        self._count = 0
        self._lq: Tensor | None = None
        self._gt: Tensor | None = None

    def __len__(self) -> int:
        """Number of stored pairs."""
        return self._count

    @property
    def full(self) -> bool:
        return self._count == self.size

    def exchange(self, lq: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
        """Store a batch and return the batch to train on (same size, new tensors).

        Args:
            lq: (B, C, h, w) and gt: (B, C, H, W), B <= pool size; every batch must have the
                same per-sample shapes, device and dtype as the first.
        """
        b = lq.shape[0]
        if gt.shape[0] != b:
            raise ValueError(f"pool: {b} LQ images but {gt.shape[0]} GT images")
        if b > self.size:
            raise ValueError(f"pool: batch of {b} is larger than the pool ({self.size})")
        if self._lq is None or self._gt is None:
            self._lq = lq.new_zeros((self.size, *lq.shape[1:]))
            self._gt = gt.new_zeros((self.size, *gt.shape[1:]))
        for name, new, stored in (("lq", lq, self._lq), ("gt", gt, self._gt)):
            if new.shape[1:] != stored.shape[1:] or new.device != stored.device or new.dtype != stored.dtype:
                raise ValueError(
                    f"pool: {name} batch {tuple(new.shape[1:])} {new.dtype} on {new.device} does not match "
                    f"the pool's {tuple(stored.shape[1:])} {stored.dtype} on {stored.device}"
                )

        # Fill free slots first; those pairs train now, as while the official queue fills.
        n_fill = min(b, self.size - self._count)
        out_lq, out_gt = lq.clone(), gt.clone()
        if n_fill:
            self._lq[self._count : self._count + n_fill] = lq[:n_fill]
            self._gt[self._count : self._count + n_fill] = gt[:n_fill]
            self._count += n_fill
        n_swap = b - n_fill
        if n_swap:
            slots = torch.randperm(self.size, generator=self._generator)[:n_swap].to(self._lq.device)
            out_lq[n_fill:] = self._lq[slots]
            out_gt[n_fill:] = self._gt[slots]
            self._lq[slots] = lq[n_fill:]
            self._gt[slots] = gt[n_fill:]
        return out_lq, out_gt

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: size, fill count, RNG state and the stored pairs (on the CPU)."""
        return {
            "size": self.size,
            "count": self._count,
            "generator": self._generator.get_state(),
            "lq": None if self._lq is None else self._lq[: self._count].cpu(),
            "gt": None if self._gt is None else self._gt[: self._count].cpu(),
        }

    def load_state_dict(self, state: dict[str, Any], *, device: torch.device | str | None = None) -> None:
        """Restore a ``state_dict``; the pairs go to ``device`` (default: the CPU)."""
        if state["size"] != self.size:
            raise ValueError(f"pool: saved size {state['size']} does not match this pool's size {self.size}")
        saved = None if state["gt"] is None else state["gt"].shape[1]
        if self.gt_channels is not None and saved is not None and saved != self.gt_channels:
            raise ValueError(
                f"pool: saved GT pairs have {saved} channels, this run's have {self.gt_channels}"
                " (player masks switched on or off?)"
            )
        self._generator.set_state(state["generator"])
        self._count = int(state["count"])
        if state["lq"] is None:
            self._lq = self._gt = None
            return
        lq, gt = state["lq"].to(device or "cpu"), state["gt"].to(device or "cpu")
        self._lq = lq.new_zeros((self.size, *lq.shape[1:]))
        self._gt = gt.new_zeros((self.size, *gt.shape[1:]))
        self._lq[: self._count] = lq
        self._gt[: self._count] = gt
