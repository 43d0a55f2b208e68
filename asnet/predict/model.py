"""What `asnet predict` scores with: a trained run's model.pt or a published file, with the
run's own protocol (clip length, frames, test views) and class names."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from asnet import hara, paths
from asnet.config import Config, ConfigError
from asnet.train.evaluate import ScoreFn


@dataclass(frozen=True)
class Predictor:
    """A model and the protocol its inputs follow."""

    name: str  # the run's variant, or the published file's stem
    score_fn: ScoreFn
    clip_len: int
    views: str  # eval.views
    short_side: int  # frames.short_side of the extraction the model was trained on
    fps: float
    timeout_s: float
    fmt: str  # frames.format: the stored format round-trips the frames (JPEG is lossy)
    quality: int
    classes: tuple[str, ...]
    spa: bool  # the model places SPA boxes


def load_predictor(cfg: Config, model_path: Path, classes: Path | None = None) -> Predictor:
    """The Predictor of `model_path`: a run's model.pt (its recorded config gives every
    protocol key; `cfg` only the device) or a published file of asnet.hara (its clip length,
    112-px crop and normalisation; `cfg` the frames). ValueError naming the file and the fix
    for a file that is neither."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file; give a run's model.pt (results/checkpoints/"
                                "<dataset>/split<k>/<variant>/model.pt) or one of Hara et al.'s published files")
    published = hara.identify(model_path.name)
    if published is not None:
        return _published(cfg, model_path, published, classes)
    from asnet.train import checkpoint
    from asnet.train.evaluate import trained_scorer

    try:
        ck = checkpoint.load(model_path)
    except checkpoint.CheckpointError as exc:
        raise ValueError(f"{str(exc).split('; delete it')[0]}; give a model.pt written by `asnet train` "
                         "(results/checkpoints/<dataset>/split<k>/<variant>/model.pt)") from None
    missing = [k for k in ("config", "model", "variant", "num_classes") if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ValueError(f"{model_path}: a checkpoint, but not a trained run's model.pt (no {', '.join(missing)}); "
                         "give results/checkpoints/<dataset>/split<k>/<variant>/model.pt, not a state/last.pt")
    run_cfg, variant, _, scorer = trained_scorer(ck, cfg.device, with_boxes=True)
    names = _class_names(run_cfg, model_path, int(ck["num_classes"]), classes)
    f = run_cfg.frames
    return Predictor(variant.name, scorer, run_cfg.input.clip_len, run_cfg.eval.views, f.short_side, float(f.fps),
                     float(f.timeout_s), f.format, f.jpeg_quality, names, variant.saliency == "spa")


def _published(cfg: Config, path: Path, published: hara.PublishedCheckpoint, classes: Path | None) -> Predictor:
    from asnet.models.pretrained import load_published_classifier
    from asnet.report.anchor import published_scorer

    net, published, _ = load_published_classifier(path)
    dataset = dict(cfg.report.anchor_datasets).get(published.dataset)
    names = (_read_classes(classes, published.num_classes) if classes else
             _manifest_names(paths.manifest(dataset, 1), published.num_classes) if dataset else None)
    f = cfg.frames
    return Predictor(path.stem, published_scorer(net, cfg), published.clip_len, "hara", f.short_side, float(f.fps),
                     float(f.timeout_s), f.format, f.jpeg_quality,
                     names or tuple(f"class{i}" for i in range(published.num_classes)), False)


def _class_names(cfg: Config, model_path: Path, n: int, classes: Path | None) -> tuple[str, ...]:
    """--classes, else the run's dataset's: a synthetic set's generator names, a real one's
    manifest (data/<dataset>/manifests/split<k>.csv here), else class0, class1, ..."""
    if classes is not None:
        return _read_classes(classes, n)
    try:
        run = paths.parse_run_dir(model_path.parent)
        dataset, split = run.dataset, run.split
    except ValueError:
        own = [d.name for d in cfg.datasets]
        dataset, split = (own[0], cfg.splits[0]) if len(own) == 1 else (None, 1)
    names = None
    if dataset is not None and any(d.name == dataset for d in cfg.datasets):
        ds = cfg.dataset(dataset)
        if ds.kind == "synthetic":
            from asnet.data.synthetic import SyntheticSpec

            known = {f.name for f in fields(SyntheticSpec)}
            names = SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in ds.synthetic.items() if k in known}).class_names
        else:
            names = _manifest_names(paths.manifest(dataset, split), n)
    if names is not None and len(names) == n:
        return tuple(names)
    return tuple(f"class{i}" for i in range(n))


def _manifest_names(manifest: Path, n: int) -> tuple[str, ...] | None:
    if not manifest.exists():
        return None
    from asnet.report.figures import class_names

    names = class_names(pd.read_csv(manifest))
    return tuple(names.get(i, f"class{i}") for i in range(n)) if names else None


def _read_classes(path: Path, n: int) -> tuple[str, ...]:
    """Class names from a manifest CSV (label, class_name), a classInd.txt ("1 Name") or one name a line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such class list (--classes); give a manifest CSV or one name a line")
    if path.suffix == ".csv":
        names = _manifest_names(path, n)
    else:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
        names = tuple(p[-1] for p in lines)
    if not names or len(names) != n:
        raise ConfigError(f"{path}: {len(names or ())} class names, the model has {n} classes; give the list of "
                          "the dataset the model was trained on")
    return tuple(names)

