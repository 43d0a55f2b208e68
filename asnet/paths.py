"""Where every stage reads and writes: one place, shared by the CLI and the Snakemake rules."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple


def raw_dir(dataset: str) -> Path:
    """Generated raw videos of the synthetic set (real datasets use the configured root)."""
    return Path("data") / dataset / "raw"


def manifest(dataset: str, split: int) -> Path:
    return Path("data") / dataset / "manifests" / f"split{split}.csv"


def coverage(dataset: str, split: int) -> Path:
    """How much of the official split lists the split's manifest holds (written by prepare)."""
    return coverage_of(manifest(dataset, split))


def coverage_of(manifest_path: Path) -> Path:
    """The coverage record beside a manifest (``split1.csv`` -> ``split1_coverage.json``)."""
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(f"{manifest_path.stem}_coverage.json")


def frames_dir(dataset: str) -> Path:
    return Path("data") / dataset / "frames"


def frames_chunk_dir(dataset: str, chunk: int) -> Path:
    """One extraction chunk's index.csv and bad_videos.csv (its arrays go straight to frames/)."""
    return Path("data") / dataset / "frames_chunks" / f"chunk{chunk}"


def frames_done_dir(dataset: str) -> Path:
    """One marker per extracted video, shared by the chunks and outside every rule's outputs:
    a chunk job killed under Snakemake (whose rerun deletes the chunk's index) keeps them."""
    return Path("data") / dataset / "frames_chunks" / ".done"


def frames_index(dataset: str) -> Path:
    return frames_dir(dataset) / "index.csv"


# Replicate runs (`seeds:`, asnet.seeds): the run of the config's `seed` is
# <variant>/ itself; the run of another seed s is <variant>/seed<s>/ inside it, for the
# checkpoint, evaluation, log and benchmark folders alike. A glob of
# results/eval/*/split*/<variant>/predictions.csv thus reads the `seed` run only. No variant
# is named seed<digits> (asnet.variants), so a path says which it is.
SEED_DIR = "seed{seed}"
_SEED_RE = re.compile(r"^seed([0-9]+)$")


def run_name(variant: str, seed: int | None = None) -> str:
    """A run's folder below split<k>/: `variant`, or `variant/seed<s>` for a replicate seed
    (None: the run of the config's `seed`)."""
    return variant if seed is None else f"{variant}/{SEED_DIR.format(seed=seed)}"


def run_dir(dataset: str, split: int, variant: str, seed: int | None = None) -> Path:
    return Path("results") / "checkpoints" / dataset / f"split{split}" / run_name(variant, seed)


def eval_dir(dataset: str, split: int, variant: str, seed: int | None = None) -> Path:
    return Path("results") / "eval" / dataset / f"split{split}" / run_name(variant, seed)


class RunId(NamedTuple):
    """Which run a run or evaluation folder holds; seed None: the run of the config's `seed`."""

    dataset: str
    split: int
    variant: str
    seed: int | None


def parse_run_dir(path: Path | str) -> RunId:
    """The run of a folder .../<dataset>/split<k>/<variant>[/seed<s>] (run_dir, eval_dir, or a
    copy of either elsewhere); ValueError when it is not one."""
    parts = Path(path).parts
    seed = None
    hit = _SEED_RE.match(parts[-1]) if parts else None
    if hit:
        seed, parts = int(hit.group(1)), parts[:-1]
    if len(parts) < 3 or not re.fullmatch(r"split[0-9]+", parts[-2]):
        raise ValueError(f"{path}: not a run folder (.../<dataset>/split<k>/<variant>[/seed<s>])")
    return RunId(parts[-3], int(parts[-2].removeprefix("split")), parts[-1], seed)


def pretrain_manifest(source: str) -> Path:
    """Every video of the pretraining source set, all in the training subset (no test split)."""
    return Path("data") / source / "manifests" / "pretrain.csv"


PRETRAIN_ROOT = Path("results") / "pretrain"


def pretrain_dir(source: str) -> Path:
    """The pretraining run on `source`: model.pt, state/last.pt, dvclive/ (like a run_dir)."""
    return PRETRAIN_ROOT / source


def pretrain_model(source: str) -> Path:
    return pretrain_dir(source) / "model.pt"


# Beside the preset's pretraining runs, not inside one: DVC outputs must not nest, and the
# `pretrain` rule's {source} (no "/") never matches a path below this folder.
PRETRAIN_BACKBONES_ROOT = PRETRAIN_ROOT / "backbones"


def pretrain_backbone_dir(source: str, backbone: str) -> Path:
    """The pretraining run on `source` of Table 2's backbone `backbone` (a key of
    asnet.variants.TABLE2_BACKBONES) when it is not the preset's: laid out like pretrain_dir."""
    return PRETRAIN_BACKBONES_ROOT / source / backbone


def pretrain_backbone_model(source: str, backbone: str) -> Path:
    return pretrain_backbone_dir(source, backbone) / "model.pt"


REPORT_ROOT = Path("results") / "report"


def report_run_dir(run_dir: Path) -> Path:
    """A run's report items (training curves, resolved config): results/<...> -> results/report/runs/<...>,
    for run folders results/checkpoints/<dataset>/split<k>/<variant>[/seed<s>], results/pretrain/<source>
    and results/pretrain/backbones/<source>/<backbone>."""
    parts = Path(run_dir).parts
    if len(parts) < 3 or parts[0] != "results" or parts[1] not in ("checkpoints", "pretrain"):
        raise ValueError(f"{run_dir}: not a run folder (results/checkpoints/<dataset>/split<k>/<variant> "
                         "or results/pretrain/<source>)")
    return REPORT_ROOT.joinpath("runs", *parts[1:])
