"""Which training and evaluation jobs a target needs, and how many videos each one reads.

Targets are the Snakemake targets whose jobs are training and evaluation runs: ``table6``
(`rule all`: every configured dataset x split x variant), ``table1`` .. ``table4`` (their
rows and paired baselines on each dataset's first split, as asnet.stages.experiment_runs
reads them), and ``all`` (results/all: those, SPA's cost rows, the localisation rows and
the probes on synthetic sets). A run that several tables read is one job (asnet.variants.
run_variant). A run that fine-tunes from the pretraining run needs that job too.

Video counts, in order of preference: the split's manifest (data/<dataset>/manifests, once
`asnet prepare` ran); for UCF-101 the official split lists in `splits_dir`; the official
split sizes (OFFICIAL_SPLITS) otherwise; synthetic sets from their configured size.
Frames per video (evaluation views): the frame store's index.csv when extracted, else the
dataset's mean length (MEAN_FRAMES, an assumption the plan states).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from asnet import paths
from asnet.config import Config, DatasetConfig

# (train, test) videos of the official splits 1-3 (UCF-101's trainlist0k/testlist0k line
# counts; HMDB-51: 70 train and 30 test videos for each of the 51 classes).
OFFICIAL_SPLITS: dict[str, dict[int, tuple[int, int]]] = {
    "ucf101": {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)},
    "hmdb51": {1: (3570, 1530), 2: (3570, 1530), 3: (3570, 1530)},
}
CLASSES = {"ucf101": 101, "hmdb51": 51}
# Mean video length in frames at 25 fps: UCF-101's 7.21 s mean clip length (Soomro et al.),
# HMDB-51's ~3.3 s (an estimate from its 6,766 clips); used until the frames are extracted.
MEAN_FRAMES = {"ucf101": 180, "hmdb51": 82}
TARGETS = ("table6", "table1", "table2", "table3", "table4", "all")


@dataclass(frozen=True)
class DataSize:
    """What a (dataset, split) gives a job: videos, classes, mean frames per video, and where
    the numbers come from."""

    train: int
    test: int
    classes: int
    mean_frames: float
    source: str


def _synthetic_size(ds: DatasetConfig) -> DataSize:
    from asnet.data.synthetic import SyntheticSpec

    spec = SyntheticSpec(**ds.synthetic)
    per_fold = spec.n_classes * spec.clips_per_group * (spec.groups // 3)  # split k tests one fold of groups
    tested = spec.n_classes * (spec.clips_per_group + spec.extra_test_clips) * (spec.groups // 3)
    return DataSize(3 * per_fold - per_fold, tested, spec.n_classes, spec.frames, "synthetic config")


def data_size(cfg: Config, dataset: str, split: int | None) -> DataSize:
    """Videos of `dataset`'s split `split` (None: the pretraining source, all videos train)."""
    ds = cfg.dataset(dataset)
    size = None
    manifest = paths.pretrain_manifest(dataset) if split is None else paths.manifest(dataset, split)
    if manifest.exists():
        df = pd.read_csv(manifest)
        size = DataSize(int((df["subset"] == "train").sum()), int((df["subset"] == "test").sum()),
                        int(df["label"].max()) + 1, 0.0, str(manifest))
    elif ds.kind == "synthetic":
        size = _synthetic_size(ds)
        if split is None:  # the source set trains on every video
            size = DataSize(size.train + size.test, 0, size.classes, size.mean_frames, size.source)
    elif ds.kind == "ucf101" and ds.splits_dir and (Path(ds.splits_dir) / f"trainlist0{split}.txt").exists():
        lists = Path(ds.splits_dir)
        count = lambda name: sum(1 for line in (lists / name).read_text().splitlines() if line.strip())  # noqa: E731
        size = DataSize(count(f"trainlist0{split}.txt"), count(f"testlist0{split}.txt"), CLASSES["ucf101"], 0.0,
                        str(lists))
    elif ds.kind in OFFICIAL_SPLITS:
        train, test = OFFICIAL_SPLITS[ds.kind][split or 1]
        size = DataSize(train, test, CLASSES[ds.kind], 0.0, "official split sizes")
    if size is None:
        raise ValueError(f"datasets[{dataset}]: kind {ds.kind!r} has no known size; run `asnet prepare "
                         f"--dataset {dataset}` first so the plan can count its manifest")
    if not size.mean_frames:
        index = paths.frames_index(dataset)
        if index.exists():
            frames = pd.read_csv(index)["frames"]
            mean = float(frames[frames > 0].mean()) if (frames > 0).any() else 0.0
        else:
            mean = 0.0
        mean = mean or MEAN_FRAMES.get(ds.kind, cfg.input.clip_len)
        size = DataSize(size.train, size.test, size.classes, mean,
                        size.source + (f", frames {index}" if index.exists() else ", mean length assumed"))
    return size


def steps_per_epoch(cfg: Config, size: DataSize) -> tuple[int, int]:
    """(optimizer steps per epoch, validation videos): the training videos less the held-out
    train.val_fraction, in batches of train.batch_size (the last partial batch is dropped
    when there is more than one batch, as the training loader does)."""
    val = round(size.train * cfg.train.val_fraction) if cfg.train.val_fraction > 0 else 0
    fit = size.train - val
    b = cfg.train.batch_size
    return (fit // b if fit > b else 1), val


def eval_views(cfg: Config, mean_frames: float) -> int:
    """Views one test video is scored on (one batch of the evaluation): Hara's every
    non-overlapping clip x 1 crop, or MMAction2's 10 clips x 3 crops."""
    if cfg.eval.views == "mmaction_10x3":
        return 30
    clips = math.ceil(mean_frames / cfg.input.clip_len)
    return min(clips, cfg.eval.max_clips) if cfg.eval.max_clips else clips


def target_runs(cfg: Config, target: str) -> list[tuple[str, int, str]]:
    """(dataset, split, run variant) of every training run `target` needs, each once, in order."""
    from asnet import stages

    if target not in TARGETS:
        raise ValueError(f"--target {target!r}: choose one of {', '.join(TARGETS)}")
    runs: list[tuple[str, int, str]] = []

    def add(dataset: str, split: int, variant: str) -> None:
        if (dataset, split, variant) not in runs:
            runs.append((dataset, split, variant))

    if target in ("table6", "all"):
        for d in cfg.datasets:
            for s in cfg.splits:
                for v in cfg.variants:
                    add(d.name, s, v)
    tables = [target] if target.startswith("table") and target != "table6" else []
    if target == "all":
        tables = ["table1", "table2", "table3", "table4"]
    for table in tables:
        for r in stages.experiment_runs(cfg, table):
            for key in ("metrics", "baseline"):
                ev = r[key].parent  # results/eval/<dataset>/split<k>/<run>
                add(ev.parent.parent.name, int(ev.parent.name.removeprefix("split")), ev.name)
    if target == "all":
        for r in stages.spa_cost_runs(cfg):
            add(r["dataset"], cfg.splits[0], r["run"])
        for r in stages.localisation_runs(cfg):
            for p in r["predictions"]:
                add(p.parent.parent.parent.name, int(p.parent.parent.name.removeprefix("split")), p.parent.name)
        for d in cfg.datasets:
            if d.kind == "synthetic":
                for s in cfg.splits:
                    for v in stages.PROBES:
                        add(d.name, s, v)
    return runs
