"""train.workers is launch-only: 0, 1 and 2 DataLoader workers train the same weights.

The epoch's order and every random draw of the crops, SPA and validation come from streams
that do not depend on how far the workers prefetch (asnet.train.loop._epoch_loader,
_validation_draw); the default (0 workers) keeps its numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asnet import paths
from asnet.config import load_config
from asnet.train import checkpoint
from asnet.train.loop import train_run

DATASET, SPLIT = "synthetic_tiny", 1


def _train(work: Path, variant: str, workers: int, extra: list[str]) -> dict:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=2", f"train.workers={workers}", *extra])
    out = work / "workers_identical" / f"{variant}_{len(extra)}_w{workers}"
    train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, variant, progress=False)
    return checkpoint.load(out / "model.pt")


def _equal(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# asnet: SPA samples from the global RNG after validation's loader; crop_in_workers: the
# crops are cut in the workers; siamese_random: fixed random boxes from the batch generator.
@pytest.mark.parametrize(("variant", "extra"), [("asnet", []), ("asnet", ["train.crop_in_workers=true"]),
                                                ("siamese_random", [])])
def test_worker_count_leaves_the_weights_identical(in_tiny_workdir: Path, variant: str, extra: list[str]) -> None:
    runs = {w: _train(in_tiny_workdir, variant, w, extra) for w in (0, 1, 2)}
    for w in (1, 2):
        assert _equal(runs[w]["model"], runs[0]["model"]), f"{w} workers trained other weights than 0"
        assert _equal(runs[w]["agent"], runs[0]["agent"])
        assert runs[w]["history"] == runs[0]["history"]
