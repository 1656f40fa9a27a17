"""The training batch stream: per-rank shuffled batches that can resume mid-epoch.

``ShardedBatchSampler`` is DistributedSampler + BatchSampler(drop_last=True) in one: each epoch
is a permutation seeded by ``seed + epoch`` (the same on every rank), cut into equal per-rank
shares, so every rank takes the same number of steps and no short batch ever reaches the
training-pair pool. ``BatchStream`` counts the batches actually consumed (the DataLoader
prefetches ahead), which is the position a checkpoint must record to resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from soccersr.data.dataset import HRImageDataset
from soccersr.errors import SoccersrError
from soccersr.train.config import TrainDataConfig


class TooFewImages(SoccersrError):
    """The training set cannot fill one batch per process; the message names the folder and the numbers."""


class ShardedBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for one rank, epoch by epoch.

    Args:
        num_items: dataset length.
        batch_size: per-rank batch size; the last short batch of an epoch is dropped.
        rank, world_size: this process's share.
        seed: the permutation of epoch ``e`` is seeded by ``seed + e``.
    """

    def __init__(self, num_items: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.per_rank = num_items // world_size
        self.batches_per_epoch = self.per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{num_items} training images are too few for {world_size} process(es) x batch {batch_size}: "
                f"need at least {world_size * batch_size}"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """The next iteration yields epoch ``epoch`` from batch ``start_batch`` on."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside [0, {self.batches_per_epoch}]")
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=generator)[: self.per_rank * self.world_size]
        mine = order[self.rank :: self.world_size].tolist()
        for b in range(self.start_batch, self.batches_per_epoch):
            yield mine[b * self.batch_size : (b + 1) * self.batch_size]


class BatchStream:
    """An endless stream of batches over epochs; ``state_dict`` is the consumed position.

    ``dataset`` may have ``set_epoch(e)`` (HRImageDataset): its per-item randomness follows the epoch.
    """

    def __init__(self, loader: DataLoader, sampler: ShardedBatchSampler) -> None:
        self.loader = loader
        self.sampler = sampler
        self.epoch = 0
        self.batch = 0
        self._iterator: Iterator[Any] | None = None

    def next(self) -> Any:
        while True:
            if self._iterator is None:
                self.sampler.set_position(self.epoch, self.batch)
                set_epoch = getattr(self.loader.dataset, "set_epoch", None)
                if set_epoch is not None:
                    set_epoch(self.epoch)
                self._iterator = iter(self.loader)
            try:
                item = next(self._iterator)
            except StopIteration:
                self.epoch, self.batch, self._iterator = self.epoch + 1, 0, None
                continue
            self.batch += 1
            return item

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._iterator = None


def build_batch_stream(
    cfg: TrainDataConfig, *, rank: int, world_size: int, seed: int, pin_memory: bool, loader_seed: int
) -> BatchStream:
    """This rank's endless stream of HR crop batches ``{"gt": (B, 3, S, S)}`` from ``datasets.train``.

    Raises DatasetError (the meta_info file or its images) or TooFewImages.
    """
    dataset = HRImageDataset(
        Path(cfg.meta_info),
        Path(cfg.dataroot_gt),
        crop_pad_size=cfg.crop_pad_size,
        use_hflip=cfg.use_hflip,
        use_rot=cfg.use_rot,
        on_bad_image=cfg.on_bad_image,
        seed=seed,
        mask_root=None if cfg.dataroot_mask is None else Path(cfg.dataroot_mask),
    )
    need = world_size * cfg.batch_size_per_gpu
    if len(dataset) < need:
        found = "1 training image is" if len(dataset) == 1 else f"{len(dataset)} training images are"
        raise TooFewImages(
            f"{cfg.dataroot_gt}: {found} too few (listed in {cfg.meta_info}) for "
            f"batch_size_per_gpu {cfg.batch_size_per_gpu} x {world_size} process(es): "
            f"need at least {need}"
        )
    sampler = ShardedBatchSampler(len(dataset), cfg.batch_size_per_gpu, rank=rank, world_size=world_size, seed=seed)
    workers = cfg.num_worker_per_gpu
    # Its own generator (worker seeds) keeps the loader off the global RNG; items are seeded by the dataset.
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    return BatchStream(loader, sampler)
