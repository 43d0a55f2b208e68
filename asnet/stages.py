"""The pipeline's stages as functions of a validated Config: what each Snakemake rule and
each `asnet` subcommand runs. Paths come from asnet.paths, so both agree."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import fields
from pathlib import Path

import pandas as pd

from asnet import hara, paths
from asnet.config import (
    REPO_ROOT,
    Config,
    ConfigError,
    DatasetConfig,
    run_shaping,
    uses_pretrain,
    with_overrides,
)
from asnet.disk import write_text_atomic
from asnet.plan.gpus import DEFAULT_GPU
from asnet.seeds import path_seed, seed_config, seed_runs
from asnet.variants import run_variant

log = logging.getLogger(__name__)


_SPLIT_FILES = {"ucf101": "classInd.txt, trainlist0k.txt, testlist0k.txt", "hmdb51": "<class>_test_split<k>.txt"}
# Where a config key is set: the CLI reads config/config.yaml or --config FILE, Snakemake
# config/config.yaml plus --configfile / --config, so an error cannot tell which file holds it.
IN_CONFIG = "your config (config/config.yaml, or the file given with --config / Snakemake's --configfile)"


def _real_dirs(ds: DatasetConfig) -> tuple[Path, Path]:
    if not ds.root or not ds.splits_dir:
        raise ConfigError(
            f"datasets[{ds.name}]: kind {ds.kind} needs `root` (folder of class folders of videos) and "
            f"`splits_dir` (folder with {_SPLIT_FILES.get(ds.kind, 'the split lists')}); see docs/real-data.md"
        )
    root, splits = Path(ds.root), Path(ds.splits_dir)
    for key, p in (("root", root), ("splits_dir", splits)):
        if not p.is_dir():
            what = ("the folder that directly holds the class folders of videos" if key == "root" else
                    f"the folder of the official split lists ({_SPLIT_FILES.get(ds.kind, 'the split lists')})")
            raise ConfigError(f"datasets[{ds.name}].{key}: {p} is not a directory; set datasets[{ds.name}].{key} "
                              f"in {IN_CONFIG} to {what}")
    return root, splits


def _unpack_archives(ds: DatasetConfig) -> None:
    """Unpack `archive` / `splits_archive` next to `root` unless root and splits_dir already exist."""
    from asnet.data.archives import UNPACKED_NAMES, unpack_hmdb51, unpack_ucf101, unpacked_dirs

    if not (ds.archive and ds.splits_archive and ds.root and ds.splits_dir):
        raise ConfigError(
            f"datasets[{ds.name}]: `archive` and `splits_archive` go together, with `root` and `splits_dir` "
            "naming where they unpack to; see docs/real-data.md"
        )
    root, splits_dir = Path(ds.root), Path(ds.splits_dir)
    if root.is_dir() and splits_dir.is_dir():
        return
    if ds.kind not in UNPACKED_NAMES:
        raise ConfigError(f"datasets[{ds.name}]: `archive` is supported for kinds {sorted(UNPACKED_NAMES)}, not {ds.kind}")
    # the archives decide the folder names, so check the config agrees before unpacking gigabytes
    for key, want, have in zip(("root", "splits_dir"), (root, splits_dir), unpacked_dirs(ds.kind, root.parent),
                               strict=True):
        if want.resolve() != have.resolve():
            raise ConfigError(f"datasets[{ds.name}].{key}: the archives unpack to {have}; set {key}: {have}")
    unpack = unpack_ucf101 if ds.kind == "ucf101" else unpack_hmdb51
    summary = unpack(Path(ds.archive), Path(ds.splits_archive), root.parent)
    log.info("%s: %d videos in %d classes under %s", ds.name, summary["n_videos"], summary["n_classes"], root)


def video_root(cfg: Config, dataset: str) -> Path:
    """Folder that manifest paths are relative to."""
    ds = cfg.dataset(dataset)
    if ds.kind == "synthetic":
        return paths.raw_dir(dataset) / "videos"
    return _real_dirs(ds)[0]


def manifests(cfg: Config, dataset: str) -> list[Path]:
    """The manifests `prepare` writes for a dataset: one per configured split, or the single
    all-training manifest of the pretraining source."""
    if cfg.is_source(dataset):
        return [paths.pretrain_manifest(dataset)]
    return [paths.manifest(dataset, s) for s in cfg.splits]


def prepare(cfg: Config, dataset: str, progress: bool = True) -> list[Path]:
    """Generate the synthetic set if needed, then write one manifest per configured split
    (the pretraining source: one manifest of all its videos, see `manifests`)."""
    from asnet.data.splits import write_manifest

    ds = cfg.dataset(dataset)
    if ds.kind == "synthetic":
        from asnet.data.synthetic import SyntheticSpec, generate

        known = {f.name for f in fields(SyntheticSpec)}
        spec = SyntheticSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in ds.synthetic.items() if k in known})
        raw = paths.raw_dir(dataset)
        summary = generate(raw, spec, progress=progress)
        log.info("synthetic dataset in %s: %s", raw, summary)
        root, splits_dir = raw / "videos", raw / "splits"
    else:
        if ds.archive or ds.splits_archive:
            _unpack_archives(ds)
        root, splits_dir = _real_dirs(ds)
    if cfg.is_source(dataset):
        # Pretraining uses every video (its validation fraction is held out by the training
        # loop); the split lists only serve to list them, so their test subset trains too.
        df = _config_manifest(ds, root, splits_dir, 1).assign(subset="train")
        df = df.sort_values("video").reset_index(drop=True)
        write_manifest(df, paths.pretrain_manifest(dataset))
        return [paths.pretrain_manifest(dataset)]
    out = []
    # Every split is checked before any manifest is written, so a bad root leaves nothing
    # behind that a later stage could take for prepared data.
    built = [(split, _config_manifest(ds, root, splits_dir, split)) for split in cfg.splits]
    records = [(split, _checked_coverage(ds, root, splits_dir, split, df)) for split, df in built]
    for (split, df), (_, record) in zip(built, records, strict=True):
        write_manifest(df, paths.manifest(dataset, split))
        paths.coverage(dataset, split).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        # INFO reaches the terminal under `asnet prepare` and prepare.log under Snakemake
        log.info("%s", coverage_line(ds.name, split, record))
        out.append(paths.manifest(dataset, split))
    return out


def coverage_line(name: str, split: int, record: dict) -> str:
    """One line of a split's coverage, as `prepare` prints and logs it."""
    tr, te, cl = record["train"], record["test"], record["classes"]
    allow = "; datasets[" + name + "].allow_missing is on" if record["allow_missing"] else ""
    return (f"{name} split {split}: train {tr['present']} of {tr['listed']} listed ({tr['missing']} missing), "
            f"test {te['present']} of {te['listed']} listed ({te['missing']} missing), "
            f"classes {cl['present']} of {cl['official']}{allow}")


def _checked_coverage(ds: DatasetConfig, root: Path, splits_dir: Path, split: int, df: pd.DataFrame) -> dict:
    """The split's coverage record; ConfigError when the manifest is empty or a class has no
    training video, since training would then crash (no batches) or learn a different
    class count (highest label + 1) without saying so."""
    from asnet.data.splits import parse_split, split_coverage

    record = split_coverage(parse_split(ds.kind, splits_dir, split), df, ds.allow_missing,
                            synthetic=ds.kind == "synthetic")
    fix = (f"set datasets[{ds.name}].root in {IN_CONFIG} to the folder that directly holds the class folders "
           "(<root>/<ClassName>/<video>.avi)")
    if df.empty:
        listed = record["train"]["listed"] + record["test"]["listed"]
        raise ConfigError(f"datasets[{ds.name}].root: none of the {listed} "
                          f"videos listed in split {split} is under {root} (datasets[{ds.name}].allow_missing "
                          f"dropped them all); {fix}")
    dropped = record["classes"]["without_train_videos"]
    if dropped:
        shown = ", ".join(dropped[:10]) + (f" ... and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        raise ConfigError(f"datasets[{ds.name}].root: {len(dropped)} of {record['classes']['official']} classes of "
                          f"split {split} have no training video under {root} ({shown}), so the model would learn "
                          f"another class count; {fix}, or complete the download (datasets[{ds.name}].allow_missing "
                          "only drops single videos)")
    return record


def _config_manifest(ds: DatasetConfig, root: Path, splits_dir: Path, split: int) -> pd.DataFrame:
    """build_manifest for a configured dataset, its errors naming the config keys to set."""
    from asnet.data.splits import SplitFileNotFound, build_manifest

    advice = f"set datasets[{ds.name}].allow_missing: true in {IN_CONFIG}"
    try:
        return build_manifest(ds.kind, root, splits_dir, split, allow_missing=ds.allow_missing,
                              allow_missing_advice=advice)
    except SplitFileNotFound as exc:
        if ds.kind == "synthetic":
            raise  # the generator writes these lists: no key of the config names their folder
        raise ConfigError(
            f"datasets[{ds.name}].splits_dir: {exc}; splits_dir is {splits_dir}, which should directly hold "
            f"{_SPLIT_FILES.get(ds.kind, 'the split lists')}; set datasets[{ds.name}].splits_dir in {IN_CONFIG} "
            "to that folder (see docs/real-data.md)"
        ) from None


def split_manifest(dataset: str, root: Path | None, splits_dir: Path, split: int, out: Path,
                   allow_missing: bool = False) -> str:
    """One split's manifest from official split lists (`asnet manifest`, no config needed);
    returns a one-line summary."""
    from asnet.data.splits import build_manifest, write_manifest

    df = build_manifest(dataset, root, splits_dir, split, allow_missing=allow_missing,
                        allow_missing_advice="pass --allow-missing")
    if df.empty:
        # allow_missing dropped every listed video: the root is wrong, not the download
        raise ValueError(f"--root {root}: none of the videos listed in split {split} is under it; pass the folder "
                         "that directly holds the class folders (<root>/<ClassName>/<video>.avi)")
    write_manifest(df, out)
    counts = df["subset"].value_counts().to_dict()
    return (f"{out}: {counts.get('train', 0)} train / {counts.get('test', 0)} test videos, "
            f"{df['label'].nunique()} classes")


def manifest_of(cfg: Config, dataset: str, split: int) -> Path:
    """The manifest of a configured (dataset, split), checked before any work starts.

    ConfigError when the dataset or split is not configured (listing the configured ones);
    FileNotFoundError naming the command that writes the manifest when it is missing.
    """
    cfg.dataset(dataset)
    if split not in cfg.splits:
        listed = ", ".join(map(str, cfg.splits))
        wider = sorted({*cfg.splits, split})
        try:  # suggest adding the split only where the schema allows it (the official lists have 3)
            with_overrides(cfg, {"splits": wider})
            add = f" or add it to `splits` in {IN_CONFIG} (--set 'splits={wider}')"
        except ConfigError:
            add = ""
        raise ConfigError(f"split {split} is not configured (splits: {listed}); "
                          f"pass --split {listed.replace(', ', ' or ')}{add}")
    path = paths.manifest(dataset, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found; write it with `asnet prepare --dataset {dataset}` "
                                f"(or `snakemake {path}`)")
    return path


def _source_manifest_of(source: str) -> Path:
    """The pretraining source's manifest; FileNotFoundError naming the command that writes it."""
    path = paths.pretrain_manifest(source)
    if not path.exists():
        raise FileNotFoundError(f"{path}: manifest not found; generate the source set with `asnet prepare --dataset "
                                f"{source}` (or `snakemake {paths.pretrain_model(source)}`, which also pretrains)")
    return path


def _frames_of(dataset: str) -> Path:
    """The extracted frame store of `dataset`; FileNotFoundError naming the command that fills it."""
    if not paths.frames_index(dataset).exists():
        raise FileNotFoundError(f"{paths.frames_index(dataset)}: frames not extracted; run "
                                f"`asnet extract --dataset {dataset}` (or `snakemake {paths.frames_index(dataset)}`)")
    return paths.frames_dir(dataset)


def _check_frame_params(cfg: Config, dataset: str) -> None:
    """Refuse to mix frames extracted with other settings into one store (resume must match)."""
    want: dict[str, object] = {"short_side": cfg.frames.short_side, "fps": float(cfg.frames.fps)}
    if cfg.frames.format != "npy":  # stores written before frames.format hold .npy and say nothing
        want.update(format=cfg.frames.format, jpeg_quality=cfg.frames.jpeg_quality)
    path = paths.frames_dir(dataset) / "params.json"
    if path.exists():
        have = json.loads(path.read_text())
        if have != want:
            raise ConfigError(
                f"frames: {paths.frames_dir(dataset)} holds frames extracted with {have}, the config asks for {want}; "
                f"delete it and {paths.frames_done_dir(dataset).parent} (or use another dataset name) to re-extract"
            )
    else:
        # atomically: parallel extraction chunks (and the source set's) may read it meanwhile
        write_text_atomic(path, json.dumps(want, sort_keys=True) + "\n")


def _videos(cfg: Config, dataset: str) -> pd.DataFrame:
    """Every video named by any configured split, once, in a fixed order."""
    if cfg.is_source(dataset):
        frames = [pd.read_csv(_source_manifest_of(dataset))]
    else:
        frames = [pd.read_csv(manifest_of(cfg, dataset, s)) for s in cfg.splits]
    return pd.concat(frames)[["video", "path"]].drop_duplicates("video").sort_values("video").reset_index(drop=True)


def extract_chunk(cfg: Config, dataset: str, chunk: int, progress: bool = True,
                  threads: int | None = None) -> pd.DataFrame:
    """Decode chunk `chunk` of `frames.chunks` (every chunks-th video) into the frame store,
    with the chunk's own index.csv and bad_videos.csv in its folder, in `frames.workers`
    decoder processes, or `threads` (the Snakemake job's) when fewer.

    Chunks are independent Snakemake jobs, so a cluster can spread them. Finished videos are
    never decoded again: a rerun finds them in the chunk's index, and a chunk killed under
    Snakemake (whose rerun deletes that index) finds their markers in frames_done_dir.
    """
    from asnet.data.frames import extract_videos

    if not 0 <= chunk < cfg.frames.chunks:
        raise ValueError(f"chunk {chunk} out of range: frames.chunks is {cfg.frames.chunks}")
    _check_frame_params(cfg, dataset)
    videos = _videos(cfg, dataset).iloc[chunk :: cfg.frames.chunks]
    gt = None
    gt_path = paths.raw_dir(dataset) / "gt_boxes.csv"
    if cfg.dataset(dataset).kind == "synthetic" and gt_path.exists():
        from asnet.data.synthetic import read_gt_boxes

        gt = read_gt_boxes(gt_path)
    return extract_videos(
        videos, video_root(cfg, dataset), paths.frames_dir(dataset), cfg.frames.short_side,
        cfg.frames.fps, min_frames=cfg.input.clip_len, timeout_s=cfg.frames.timeout_s,
        # Snakemake scales a job's threads down to --cores: more decoders would oversubscribe
        # the cores that other jobs were given.
        workers=max(1, min(cfg.frames.workers, threads or cfg.frames.workers)), gt_boxes=gt, progress=progress,
        index_dir=paths.frames_chunk_dir(dataset, chunk), done_dir=paths.frames_done_dir(dataset),
        fmt=cfg.frames.format, quality=cfg.frames.jpeg_quality,
    )


def extract_chunk_inputs(cfg: Config, dataset: str, chunk: int | None = None) -> list[Path]:
    """An extraction chunk reads the dataset's manifests (per split, or the source's single one)."""
    return manifests(cfg, dataset)


def merge_frames_inputs(cfg: Config, dataset: str) -> list[Path]:
    """The merge reads every chunk's index."""
    return [paths.frames_chunk_dir(dataset, k) / "index.csv" for k in range(cfg.frames.chunks)]


def merge_frames(cfg: Config, dataset: str) -> pd.DataFrame:
    """Merge the chunks' indexes into the frame store's index.csv and bad_videos.csv, and
    delete arrays the index does not list (videos now excluded or no longer configured)."""
    from asnet.data.frames import INDEX_COLUMNS, STATUS_EXCLUDED, read_index, write_csv
    from asnet.data.store import SUFFIXES, store_path

    out = paths.frames_dir(dataset)
    out.mkdir(parents=True, exist_ok=True)
    parts = [read_index(paths.frames_chunk_dir(dataset, chunk)) for chunk in range(cfg.frames.chunks)]
    index = pd.concat(parts)[list(INDEX_COLUMNS)].sort_values("video").reset_index(drop=True)
    index["reason"] = index["reason"].fillna("")
    stored = set(index.loc[index["status"] != STATUS_EXCLUDED, "video"])
    missing = sorted(v for v in stored if not store_path(out, v, cfg.frames.format).exists())
    if missing:
        raise FileNotFoundError(f"{out}: frames of {len(missing)} indexed videos are missing (e.g. {missing[:3]}); "
                                f"delete {out} and {paths.frames_done_dir(dataset).parent} and extract again")
    for suffix in SUFFIXES.values():
        for f in out.glob(f"*{suffix}*"):  # arrays, box arrays and temp files of killed runs
            if f.name.partition(suffix)[0].removesuffix(".boxes") not in stored or f"{suffix}.tmp" in f.name:
                f.unlink()
    write_csv(index, out / "index.csv")
    bad = index[index["status"] != "ok"]
    write_csv(bad, out.parent / "bad_videos.csv")
    counts = index["status"].value_counts().to_dict()
    print(f"{dataset}: frames of {len(index)} videos in {out}: ok {counts.get('ok', 0)}, "
          f"repaired {counts.get('repaired', 0)}, excluded {counts.get('excluded', 0)} (see {out.parent / 'bad_videos.csv'})")
    return index


def extract(cfg: Config, dataset: str, progress: bool = True) -> pd.DataFrame:
    """All chunks, then the merge: what `asnet extract` runs in one process."""
    for chunk in range(cfg.frames.chunks):
        extract_chunk(cfg, dataset, chunk, progress)
    return merge_frames(cfg, dataset)


def verify_store(cfg: Config, dataset: str, progress: bool = True) -> None:
    """Check every file of `dataset`'s frame store against its checksums (`asnet verify-store`):
    one line per bad or missing file (the file, the damage, the fix), then a summary; a
    StoreError (exit 2) if any is bad. Reads the whole store: run it before a long run."""
    from asnet.data.frames import verify_frames
    from asnet.data.store import StoreError

    frames = _frames_of(dataset)
    check = verify_frames(frames, progress=progress)
    for line in check.bad:
        print(line)
    print(f"{dataset}: {check.files} files of {check.videos} videos in {frames}: {check.verified} match their "
          f"checksums, {check.unverified} carry none (written before checksums; structure checked), "
          f"{len(check.bad)} bad")
    if check.bad:
        n = len(check.bad)
        raise StoreError(f"{n} file{'s' * (n != 1)} of the frame store {frames} damaged or missing (listed "
                         f"above); delete them, then `asnet extract --dataset {dataset}` decodes exactly those "
                         "videos again")


def fine_tunes_from_pretrain(cfg: Config) -> bool:
    """Whether runs of `cfg` start from the pretraining run's model.pt (model.pretrained)."""
    return uses_pretrain(cfg.to_dict())


# Model keys that decide the backbone's tensors: a variant that changes one cannot load the
# pretraining run's weights (trained with the preset's backbone).
_BACKBONE_KEYS = ("arch", "depth", "width", "cardinality", "no_max_pool", "shortcut")


def _other_backbone(cfg: Config, other: Config) -> bool:
    return any(getattr(other.model, k) != getattr(cfg.model, k) for k in _BACKBONE_KEYS)


def _backbone_config(cfg: Config, backbone: str) -> Config:
    """`cfg` with Table 2's backbone `backbone` (its model keys, and DenseNet's 16-frame clips)."""
    from asnet.variants import TABLE2_BACKBONES

    return with_overrides(cfg, TABLE2_BACKBONES[backbone][2])


def pretrained_backbones(cfg: Config) -> tuple[str, ...]:
    """Table 2's backbones (`report.table2_backbones`) that get a pretraining run of their own
    on the source set (results/pretrain/backbones/<source>/<key>/model.pt): those whose tensors
    differ from the preset's backbone, when the preset's runs fine-tune its pretraining run.
    The preset's backbone keeps results/pretrain/<source>/model.pt; without the stand-in
    (the paper preset's Kinetics files, or from scratch) there are none."""
    from asnet.variants import TABLE2_BACKBONES

    if not fine_tunes_from_pretrain(cfg):
        return ()

    def other(key: str) -> bool:  # the overrides alone: run_config asks for every variant
        return any(name.startswith("model.") and name[6:] in _BACKBONE_KEYS and getattr(cfg.model, name[6:]) != value
                   for name, value in TABLE2_BACKBONES[key][2].items())

    return tuple(k for k in cfg.report.table2_backbones if other(k))


def _check_backbone(cfg: Config, backbone: str) -> None:
    keys = pretrained_backbones(cfg)
    if backbone not in keys:
        raise ConfigError(f"--backbone {backbone}: not a backbone pretrained for this config; choose one of "
                          f"{', '.join(keys) or '(none: model.pretrained does not name the pretraining run)'} "
                          "(report.table2_backbones that differ from the preset's model), or leave it out "
                          "for the preset's backbone")


def run_config(cfg: Config, variant: str) -> Config:
    """The configuration a (dataset, split, variant) run trains with: the variant's overrides
    applied. A variant with another backbone than the pretraining run's (Table 2's rows)
    fine-tunes its own backbone's pretraining run (pretrained_backbones), or trains from
    scratch when that backbone has none."""
    from asnet.variants import get_variant

    v = get_variant(variant)
    out = with_overrides(cfg, v.overrides)
    if fine_tunes_from_pretrain(out) and _other_backbone(cfg, out):
        own = v.backbone in pretrained_backbones(cfg)
        pretrained = str(paths.pretrain_backbone_model(cfg.pretrain.dataset.name, v.backbone)) if own else None
        out = with_overrides(out, {"model.pretrained": pretrained})
    return out


def fine_tuned_backbone(cfg: Config, variant: str) -> str | None:
    """The backbone key whose own pretraining run `variant`'s runs fine-tune (None: the
    preset's pretraining run, a published file, or from scratch)."""
    from asnet.variants import get_variant

    key = get_variant(variant).backbone
    rc = run_config(cfg, variant)
    if key and cfg.pretrain and rc.model.pretrained == str(paths.pretrain_backbone_model(cfg.pretrain.dataset.name,
                                                                                            key)):
        return key
    return None


def pretrain_config(cfg: Config, backbone: str | None = None) -> Config:
    """The pretraining run's configuration: the preset's backbone (or Table 2's `backbone`, one
    of pretrained_backbones), input and training settings, from scratch on the source set (its
    only dataset) with `pretrain.epochs`/`pretrain.lr` as train.epochs/lr, so raising the
    epochs resumes it like any run. SPA and the fusion are left at their defaults: a single
    stream uses neither, so editing them (or sweeping SPA) neither retrains the source model
    nor stops it from resuming."""
    from asnet.config import SPAConfig

    if cfg.pretrain is None:
        raise ConfigError("pretrain: the config has no `pretrain:` section (the Kinetics stand-in); "
                          "see config/presets/default.yaml")
    if backbone is not None:
        _check_backbone(cfg, backbone)
        cfg = _backbone_config(cfg, backbone)
    p = cfg.pretrain
    model = dataclasses.replace(cfg.model, fusion="concat", pretrained=None, pretrained_dir=None,
                                pretrained_release="auto")
    if backbone is not None:
        # not in the paper: from Hara's init the deep bottleneck nets stay at chance on the stand-in
        model = dataclasses.replace(model, zero_init_residual=True)
    train = dataclasses.replace(cfg.train, epochs=p.epochs, lr=p.lr)
    return dataclasses.replace(cfg, datasets=(p.dataset,), model=model, train=train, spa=SPAConfig(), pretrain=None)


def pretrain_run_dir(cfg: Config, backbone: str | None = None) -> Path:
    """Where the pretraining run of the preset's backbone (None) or of `backbone` writes."""
    source = cfg.pretrain.dataset.name
    return paths.pretrain_backbone_dir(source, backbone) if backbone else paths.pretrain_dir(source)


def pretrain_inputs(cfg: Config, source: str, backbone: str | None = None) -> list[Path]:
    """The pretraining run reads its source set's manifest and frame index (a `backbone`
    wildcard that no configured run needs stops the workflow while it is planned)."""
    if backbone is not None:
        _check_backbone(cfg, backbone)
    return [paths.pretrain_manifest(source), paths.frames_index(source)]


def pretrain(cfg: Config, progress: bool = True, source: str | None = None, backbone: str | None = None) -> Path:
    """The pretraining run (Kinetics stand-in): a single stream on every video of the source
    set but a validation fraction, with the project's training loop (resumable like any run),
    of the preset's backbone or of Table 2's `backbone` (pretrain_config). `source` (the
    rule's wildcard) must name the configured source set."""
    from asnet.train.loop import train_run

    if source is not None and not cfg.is_source(source):
        raise ValueError(f"{source} is not the configured pretraining source")
    pcfg = pretrain_config(cfg, backbone)
    source = pcfg.datasets[0].name
    manifest, frames = _source_manifest_of(source), _frames_of(source)
    return train_run(pcfg, manifest, frames, pretrain_run_dir(cfg, backbone), "single", progress=progress)


def train_inputs(cfg: Config, dataset: str, split: int, variant: str) -> list[Path]:
    """A run reads its split's manifest, the frame index and the checkpoint it starts from
    (Kinetics file or the pretraining run's model.pt): a missing one stops Snakemake before
    any job starts, naming the file."""
    return [paths.manifest(dataset, split), paths.frames_index(dataset),
            *map(Path, pretrained_inputs(cfg, variant))]


# Per-video versions of the frame stores, bumped when a store file that a run skipped as
# unreadable changed since (see refresh_store_versions). Outside data/<dataset>, which DVC
# tracks as the frames stage's output: writing it while planning leaves that output unchanged.
STORE_VERSIONS = Path("results") / "store_versions.json"


def refresh_store_versions(cfg: Config, out_json: Path = STORE_VERSIONS) -> dict[str, dict[str, dict]]:
    """Bump the version of every video that an existing run of a configured dataset recorded
    as skipped (`<run_dir>/skipped_videos.csv`, asnet.train.skips) and whose store file has
    changed since its last skip (repaired, re-extracted, replaced): the train rule's params
    (`store_version`) then retrain exactly the runs whose split trains that video.

    Only the recorded files are stat'ed. Idempotent: the new file's identity (size, mtime_ns)
    is kept with the version, and a file is bumped once per change, however many runs recorded
    it. After the retrain the run no longer lists a readable video, and one still unreadable is
    recorded with its current identity: planning again bumps nothing, and the runs stay done.
    The Snakefile calls it while the workflow is planned. Returns {dataset: {video: {version,
    size, mtime_ns}}}; written atomically, only when a version changed."""
    from asnet.train import skips

    record = json.loads(out_json.read_text()) if out_json.is_file() else {}
    changed = False
    # <split>/<variant>/ and the replicate seeds' <split>/<variant>/seed<s>/ (asnet.paths)
    sets = [(d.name, sorted(p for pattern in ("*/*", "*/*/seed*")
                            for p in paths.run_dir(d.name, 0, "_").parent.parent.glob(f"{pattern}/{skips.RECORD_NAME}")))
            for d in cfg.datasets]
    if cfg.pretrain:  # the pretraining run trains on every video of its source set
        source = cfg.pretrain.dataset.name
        runs = [pretrain_run_dir(cfg, b) for b in (None, *pretrained_backbones(cfg))]
        sets.append((source, [p for p in (r / skips.RECORD_NAME for r in runs) if p.is_file()]))
    for name, records in sets:
        versions = record.setdefault(name, {})
        for csv in records:
            for video, (file, size, mtime) in skips.last_skips(csv.parent).items():
                now = list(skips.file_identity(file))
                entry = versions.get(video)
                if now == [size, mtime] or (entry is not None and [entry["size"], entry["mtime_ns"]] == now):
                    continue
                versions[video] = {"version": (entry["version"] if entry else 0) + 1, "size": now[0],
                                   "mtime_ns": now[1]}
                changed = True
                log.info("%s: %s changed since run %s skipped it: version %d", name, file, csv.parent,
                         versions[video]["version"])
    record = {k: v for k, v in record.items() if v}
    if changed:  # atomically: parallel planners never see half a file
        write_text_atomic(out_json, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def store_version(cfg: Config, dataset: str, split: int, versions_json: Path = STORE_VERSIONS) -> str:
    """Digest of the store versions of the videos a (dataset, split) run trains and validates
    on (its manifest's train rows): the train rule's `params`, so a repaired store file that a
    run skipped retrains it. "" while none of them was ever bumped (every run at first)."""
    versions = _store_versions(versions_json, dataset)
    manifest = paths.manifest(dataset, split)
    if not versions or not manifest.is_file():
        return ""
    df = pd.read_csv(manifest, usecols=["video", "subset"], dtype={"video": str})
    return _versions_digest({v: versions[v] for v in df.loc[df["subset"] == "train", "video"] if v in versions})


def _store_versions(versions_json: Path, dataset: str) -> dict[str, int]:
    """{video: version} of `dataset` in results/store_versions.json (refresh_store_versions)."""
    record = json.loads(versions_json.read_text()) if versions_json.is_file() else {}
    return {v: e["version"] for v, e in record.get(dataset, {}).items()}


def _versions_digest(versions: dict[str, int]) -> str:
    """A short digest of {video: version}; "" for none (a run's param before any repair)."""
    import hashlib

    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16] if versions else ""


def pretrain_store_version(cfg: Config, versions_json: Path = STORE_VERSIONS) -> str:
    """`store_version` of the pretraining run, which trains on every video of its source set:
    the pretrain rule's `params`. "" without pretraining or while no source video was bumped."""
    return _versions_digest(_store_versions(versions_json, cfg.pretrain.dataset.name)) if cfg.pretrain else ""


def train_job(cfg: Config, dataset: str, split: int, variant: str, log_file: Path | None = None,
              progress: bool = True, seed: int | None = None) -> Path:
    """The train rule's work: `train`, or torchrun running `asnet train` in
    `train.nproc_per_node` processes (the resolved config in a file beside the rule's log)."""
    if cfg.train.nproc_per_node > 1:
        import sys

        from asnet.train.launch import run_torchrun

        # torchrun's workers are new processes: they read the configuration resolved here from
        # a file beside the rule's log (kept, so the log says what was trained).
        run = paths.run_dir(dataset, split, variant, path_seed(cfg, seed))
        log_dir = log_file.parent if log_file is not None else run
        run_torchrun(cfg, dataset, split, variant, log_dir / "train_config.yaml", output=sys.stderr, seed=seed)
        return run / "model.pt"
    return train(cfg, dataset, split, variant, progress, seed)


def train(cfg: Config, dataset: str, split: int, variant: str, progress: bool = True,
          seed: int | None = None) -> Path:
    """Train one run; the variant's own config changes (fusion, SPA actions/steps) apply, and
    `seed` (one of `seeds`; None: the config's `seed`) picks the replicate (asnet.seeds).

    With train.nproc_per_node > 1, outside a torchrun worker, this launches the torchrun job
    the train rule launches (`train_job`; its resolved configuration goes where the rule's
    does, beside the rule's log): the key means the same at the command line as under
    Snakemake, instead of silently training in one process."""
    from asnet.train.distributed import under_torchrun
    from asnet.train.loop import train_run

    if cfg.is_source(dataset):
        raise ConfigError(f"{dataset} is the pretraining source set (no splits, no test videos); "
                          "train it with `asnet pretrain`")
    if cfg.train.nproc_per_node > 1 and not under_torchrun():
        s = path_seed(cfg, seed)
        log_dir = Path("results/logs") / dataset / f"split{split}" / variant / (f"seed{s}" if s is not None else "")
        return train_job(cfg, dataset, split, variant, log_dir / "train.log", progress, seed)
    run = paths.run_dir(dataset, split, variant, path_seed(cfg, seed))
    cfg = seed_config(run_config(cfg, variant), seed)
    manifest, frames = manifest_of(cfg, dataset, split), _frames_of(dataset)
    return train_run(cfg, manifest, frames, run, variant, progress=progress)


def train_signature(cfg: Config, dataset: str, variant: str, seed: int | None = None) -> str:
    """Digest of everything that decides what a (dataset, variant) run trains, after the
    variant's overrides: the train rule's `params`, so Snakemake retrains when it changes
    (config edits otherwise leave existing checkpoints standing). Launch details
    (config.LAUNCH_ONLY_KEYS, which resuming ignores too), the device, other datasets and
    the report settings are left out; a replicate `seed` enters as the run's `seed`."""
    rc = run_config(cfg, variant) if path_seed(cfg, seed) is None else seed_config(run_config(cfg, variant), seed)
    # The pretraining run counts through its own digest (what it trains), and only for the
    # runs that start from it: the others keep the digest they had before it existed.
    extra = {"pretrain": pretrain_signature(cfg)} if fine_tunes_from_pretrain(rc) else {}
    if (backbone := fine_tuned_backbone(cfg, variant)) is not None:
        extra = {"pretrain": pretrain_signature(cfg, backbone)}
    return _digest(rc, dataset, extra)


def pretrain_signature(cfg: Config, backbone: str | None = None) -> str:
    """Digest of everything that decides what the pretraining run (of the preset's backbone, or
    of `backbone`) trains: the pretrain rules' `params`, and part of the train rule's for every
    run that fine-tunes from it."""
    pcfg = pretrain_config(cfg, backbone)
    return _digest(pcfg, pcfg.datasets[0].name, {})


def _digest(cfg: Config, dataset: str, extra: dict) -> str:
    import hashlib

    c = cfg.to_dict()
    # `pretrain` enters as its digest (extra), which covers what the pretraining run trains
    keep = {k: v for k, v in run_shaping(c).items() if k != "pretrain"} | extra
    keep["dataset"] = next((d for d in c["datasets"] if d["name"] == dataset), dataset)
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def pretrained_inputs(cfg: Config, variant: str) -> list[str]:
    """The checkpoint a variant's run starts from (Kinetics file or the pretraining run's
    model.pt), as a rule input ([] from scratch)."""
    from asnet.models.pretrained import pretrained_path

    path = pretrained_path(run_config(cfg, variant))
    return [str(path)] if path else []


# The record of pretrained files whose contents were checked, keyed by what the check depends on
# (file, size, mtime, the backbone and normalisation it was checked against): planning the
# workflow again with an unchanged file reads this record instead of loading the file.
PRETRAINED_CHECK = Path("results") / "pretrained_check.json"


def _published_inputs(cfg: Config) -> dict[Path, tuple[str, Config]]:
    """The pretrained files that are workflow inputs (Hara et al.'s downloads, a file of the
    user's), each with the first variant that starts from it and that variant's run config:
    the configured `variants` first, then every other registered one (Tables 1-4 and the
    reports train those). Files the workflow writes (under results/, e.g. the pretraining
    run's model.pt) are left out: they do not exist before extraction, and the train job
    checks them when it loads them. Missing files are left out too: Snakemake names a missing
    input itself when a job needs it."""
    from asnet.variants import VARIANTS

    results = Path("results").resolve()
    out: dict[Path, tuple[str, Config]] = {}
    # No variant sets model.pretrained or model.pretrained_dir: without either in the config no
    # run starts from a file, and an explicit file under results/ is the workflow's own.
    own = cfg.model.pretrained and Path(cfg.model.pretrained).resolve().is_relative_to(results)
    if not cfg.model.pretrained_dir and (not cfg.model.pretrained or own):
        return out
    # Without pretrained_dir every run starts from model.pretrained or from scratch: the
    # configured variants find every file (building each registered variant costs seconds).
    variants = [*cfg.variants, *VARIANTS] if cfg.model.pretrained_dir else list(cfg.variants)
    for variant in dict.fromkeys(variants):
        try:
            rc = run_config(cfg, variant)
            path = hara.pretrained_file(dataclasses.asdict(rc.model), rc.input.clip_len)
        except (ConfigError, ValueError):
            if variant in cfg.variants:
                raise
            continue  # a row this config cannot build (e.g. ResNeXt at width 8): it is never trained
        if path is None or path in out or not path.is_file():
            continue
        if path.resolve().is_relative_to(results):
            continue
        out[path] = (variant, rc)
    return out


def check_pretrained(cfg: Config, out_json: Path = PRETRAINED_CHECK) -> list[dict]:
    """Open every pretrained file the configured runs start from (see `_published_inputs`) and
    run the validation training runs at load time (layout, release, class count, tensor names
    and shapes against the backbone the run config builds), without training.

    The Snakefile calls it while the workflow is planned, so a truncated download, a renamed
    file of the other release or a file of another backbone stops the workflow before any
    frame is extracted. Results are recorded in `out_json`; an unchanged file is not loaded
    again. Nothing is written when no run starts from a published file (from scratch, or from
    the pretraining run's model.pt). Returns the record's entries of this config's files.
    Raises ConfigError naming the key, the variant and the file."""
    import hashlib

    files = _published_inputs(cfg)
    if not files:
        return []
    record = json.loads(out_json.read_text()) if out_json.is_file() else {}
    checked, changed = [], False
    for path, (variant, rc) in files.items():
        stat = path.stat()
        what = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "model": dataclasses.asdict(rc.model), "normalisation": rc.normalisation().to_dict()}
        key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
        if key not in record:
            record[key] = {"variant": variant, **_load_check(rc, path, variant)}
            changed = True
        checked.append(record[key])
    if changed:  # atomically: parallel planners (cluster jobs re-read the Snakefile) never see half a file
        write_text_atomic(out_json, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return checked


def _load_check(rc: Config, path: Path, variant: str) -> dict:
    """load_pretrained of `path` into the model `rc` builds; its LoadReport, or ConfigError."""
    from asnet.models import build_model
    from asnet.models.pretrained import load_pretrained

    key = "model.pretrained" if rc.model.pretrained else "model.pretrained_dir"
    # The classifier is replaced for the target classes and one stream holds the backbone:
    # neither the class count nor the streams decide whether the file's tensors fit.
    model = build_model(rc.model, 2, 1)
    try:
        report = load_pretrained(model, path, rc)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"{key}: the file variant {variant} starts from does not load: {exc}") from None
    out = report.to_dict()
    out.pop("normalisation")
    return out


def evaluate_inputs(cfg: Config, dataset: str, split: int, variant: str, seed: int | None = None) -> list[Path]:
    """Evaluation reads the run's model.pt, its split's manifest and coverage record (the
    official test count in metrics.json) and the frame index."""
    return [paths.run_dir(dataset, split, variant, path_seed(cfg, seed)) / "model.pt", paths.manifest(dataset, split),
            paths.coverage(dataset, split), paths.frames_index(dataset)]


def evaluate(cfg: Config, dataset: str, split: int, variant: str, progress: bool = True,
             seed: int | None = None) -> dict:
    """Video-level evaluation of one trained run (`seed`: a replicate's, see asnet.seeds); a
    missing input names the command that makes it."""
    from asnet.train.evaluate import evaluate_run

    run_seed = path_seed(cfg, seed)
    model = paths.run_dir(dataset, split, variant, run_seed) / "model.pt"
    manifest, frames = manifest_of(cfg, dataset, split), _frames_of(dataset)
    if not model.exists():
        flag = "" if run_seed is None else f" --seed {run_seed}"
        raise FileNotFoundError(f"{model}: no trained model; run `asnet train --dataset {dataset} --split {split} "
                                f"--variant {variant}{flag}` (or `snakemake {model}`)")
    # The run fixes model, input, SPA and training keys (a differing one is refused, named);
    # the test protocol, device, threads and decoding workers are the config's.
    return evaluate_run(
        model, manifest, frames, paths.eval_dir(dataset, split, variant, run_seed), threads=cfg.train.threads,
        progress=progress, eval_cfg=cfg.eval, expected=seed_config(run_config(cfg, variant), seed), dataset=dataset,
        device=cfg.device, workers=cfg.train.workers,
    )


def predict(cfg: Config, inputs: list[Path], model: Path, top_k: int = 5, out_csv: Path | None = None,
            annotate_dir: Path | None = None, classes: Path | None = None, progress: bool = True) -> object:
    """`model` on video files (asnet.predict.run.predict_files): its PredictResult, whose
    `errors` list the files that could not be scored (the CLI exits 2 when there are any)."""
    from asnet.device import set_threads
    from asnet.predict.run import predict_files

    set_threads(cfg.train.threads)
    return predict_files(cfg, inputs, model, top_k, out_csv, annotate_dir, classes, progress)


PROBES = ["probe_full", "probe_center", "probe_oracle"]


def metric_files(cfg: Config, variants: list[str] | None = None) -> list[Path]:
    """metrics.json of every configured (dataset, split, variant) run, each replicate seed's too."""
    return [
        paths.eval_dir(d.name, s, v, seed) / "metrics.json"
        for d in cfg.datasets
        for s in cfg.splits
        for v in (variants or cfg.variants)
        for _, seed in seed_runs(cfg)
    ]


def probes_inputs(cfg: Config) -> list[Path]:
    """metrics.json of the probe runs."""
    return metric_files(cfg, PROBES)


def probes(cfg: Config, out_tex: Path = Path("results/probes.tex")) -> pd.DataFrame:
    """Learnability of the synthetic set: single stream on full frame / centre / oracle crops."""
    from asnet.report.tables import write_table6

    synthetic = [d for d in cfg.datasets if d.kind == "synthetic"]
    if not synthetic:
        raise ConfigError("the learnability probes need a synthetic dataset (ground-truth boxes)")
    files = [paths.eval_dir(d.name, s, v, seed) / "metrics.json" for d in synthetic for s in cfg.splits for v in PROBES
             for _, seed in seed_runs(cfg)]
    return write_table6(files, PROBES, out_tex, out_tex.with_suffix(".csv"),
                        caption="Learnability of the synthetic set: single-stream top-1 (\\%) by input crop.",
                        paper_column=False, seed=cfg.seed)


def _num_classes(cfg: Config, dataset: str) -> int:
    """Classes of a prepared dataset, from its first configured split's manifest."""
    return int(pd.read_csv(paths.manifest(dataset, cfg.splits[0]))["label"].max()) + 1


def _first_split_manifests(cfg: Config) -> list[Path]:
    """The class counts (cost columns) come from each dataset's first split's manifest."""
    return [paths.manifest(d.name, cfg.splits[0]) for d in cfg.datasets]


ANCHOR_CSV = Path("results/anchor_check.csv")


def _anchor_runs_here(cfg: Config) -> bool:
    """Whether the anchor check evaluates a published file in this run (one is present for a
    configured dataset): then Table 6 carries its verdict and waits for it."""
    from asnet.report.anchor import anchor_runs

    return any(r["status"] == "ready" for r in anchor_runs(cfg))


def table6_inputs(cfg: Config) -> list[Path]:
    """Every configured run's metrics.json, the manifests that give the class counts and,
    when the anchor check is part of the run, its result (the caption states its verdict)."""
    return metric_files(cfg) + _first_split_manifests(cfg) + ([ANCHOR_CSV] if _anchor_runs_here(cfg) else [])


def table6(cfg: Config, out_tex: Path = Path("results/table6.tex")) -> pd.DataFrame:
    """Table 6 with the cost of each model (params, forward GMACs per view)."""
    from asnet.report.anchor import flag_sentence
    from asnet.report.flops import model_cost
    from asnet.report.tables import write_table6

    costs = {(d.name, v): model_cost(cfg, _num_classes(cfg, d.name), v) for d in cfg.datasets for v in cfg.variants}
    sentence = flag_sentence(out_tex.parent / ANCHOR_CSV.name) if _anchor_runs_here(cfg) else ""
    return write_table6(metric_files(cfg), list(cfg.variants), out_tex, out_tex.with_suffix(".csv"), costs=costs,
                        anchor_sentence=sentence, seed=cfg.seed)


def figure4_runs(cfg: Config) -> list[Path]:
    """Run folders Figure 4 plots: the ASNet run of every configured (dataset, split)."""
    return [paths.run_dir(d.name, s, "asnet") for d in cfg.datasets for s in cfg.splits]


def figure5_runs(cfg: Config) -> dict[str, Path]:
    """Inputs of Figure 5: split 1 (else the first configured split) of the first dataset."""
    dataset = cfg.datasets[0].name
    split = 1 if 1 in cfg.splits else cfg.splits[0]
    return {
        "asnet": paths.run_dir(dataset, split, "asnet") / "model.pt",
        "single": paths.run_dir(dataset, split, "single") / "model.pt",
        "manifest": paths.manifest(dataset, split),
        "frames": paths.frames_dir(dataset),
    }


def figure4_inputs(cfg: Config) -> list[Path]:
    """The model.pt of every run Figure 4 plots (their training history)."""
    return [p / "model.pt" for p in figure4_runs(cfg)]


def figure5_inputs(cfg: Config) -> list[Path]:
    """Figure 5's two models, manifest and frame index."""
    runs = figure5_runs(cfg)
    return [runs["asnet"], runs["single"], runs["manifest"], paths.frames_index(cfg.datasets[0].name)]


def figure4(cfg: Config, out_pdf: Path = Path("results/figure4.pdf")) -> Path:
    """SPA mean reward and loss per epoch of every ASNet run: results/figure4.{pdf,png}."""
    from asnet.report.figures import figure4 as make_figure4

    make_figure4(figure4_runs(cfg), out_pdf.with_suffix(""))
    return out_pdf


def figure5(cfg: Config, out_pdf: Path = Path("results/figure5.pdf"), n_videos: int = 4) -> Path:
    """SPA boxes on test frames and Grad-CAM, ASNet vs single stream: results/figure5.{pdf,png}."""
    from asnet.report.figures import figure5 as make_figure5

    runs = figure5_runs(cfg)
    single = runs["single"] if runs["single"].exists() else None
    if single is None:
        log.warning("figure 5: %s not found; Grad-CAM of ASNet only", runs["single"])
    make_figure5(runs["asnet"], runs["manifest"], runs["frames"], out_pdf.with_suffix(""), n_videos, single)
    return out_pdf


def experiment_runs(cfg: Config, table: str) -> list[dict]:
    """Rows of one of the paper's experiment tables (1-4), per configured dataset on its
    first split (the paper reports Tables 1-4 on split 1): the row's variant, the run it
    reads (see run_variant), its metrics.json, the paired baseline's metrics.json (the
    same backbone's single stream), the paper's (row, column) for that cell, and the
    metrics.json of the row's replicate seeds (`replicates`, [] for one seed; asnet.seeds)."""
    from asnet.variants import EXPERIMENTS

    if table not in EXPERIMENTS:
        raise ValueError(f"unknown experiment table {table!r}; choose one of {sorted(EXPERIMENTS)}")
    rows = EXPERIMENTS[table]
    if table == "table2":
        keep = {f"{key}_{b}" for key in cfg.report.table2_backbones for b in ("single", "siamese_center", "asnet")}
        rows = [r for r in rows if r[0] in keep]
    split = cfg.splits[0]
    out = []
    for d in cfg.datasets:
        for variant, paper_row, paper_col in rows:
            baseline = variant.replace(paper_row, "single") if table == "table2" else "single"
            run, base_run = run_variant(cfg, variant), run_variant(cfg, baseline)
            out.append({
                "dataset": d.name, "variant": variant, "run": run,
                "metrics": paths.eval_dir(d.name, split, run) / "metrics.json",
                "baseline": paths.eval_dir(d.name, split, base_run) / "metrics.json",
                "paper_row": paper_row, "paper_col": paper_col,
                "replicates": [paths.eval_dir(d.name, split, run, seed) / "metrics.json"
                               for _, seed in seed_runs(cfg) if seed is not None],
            })
    return out


def spa_cost_runs(cfg: Config) -> list[dict]:
    """Rows of results/spa_cost: single stream, the paper's SPA and the cheaper SPA, per
    configured dataset on its first split, with the metrics.json each reads."""
    from asnet.variants import SPA_COST_VARIANTS

    split = cfg.splits[0]
    runs = {v: run_variant(cfg, v) for v in SPA_COST_VARIANTS}
    return [{"dataset": d.name, "variant": v, "run": run,
             "metrics": paths.eval_dir(d.name, split, run) / "metrics.json"}
            for d in cfg.datasets for v, run in runs.items()]


def spa_cost_inputs(cfg: Config) -> list[Path]:
    """metrics.json of the SPA cost rows and the manifests that give the class counts."""
    return [r["metrics"] for r in spa_cost_runs(cfg)] + _first_split_manifests(cfg)


def spa_cost(cfg: Config, out_tex: Path = Path("results/spa_cost.tex")) -> pd.DataFrame:
    """results/spa_cost.{tex,csv}: accuracy and FLOPs of the cheaper SPA beside the paper's."""
    from asnet.report.flops import model_cost
    from asnet.report.spa_cost import write_spa_cost

    rows = spa_cost_runs(cfg)
    classes = {d.name: _num_classes(cfg, d.name) for d in cfg.datasets}
    single = {name: model_cost(cfg, n, "single") for name, n in classes.items()}
    for r in rows:
        r["cost"] = model_cost(cfg, classes[r["dataset"]], r["variant"])
        r["single_cost"] = single[r["dataset"]]
    return write_spa_cost(rows, out_tex)


def localisation_runs(cfg: Config) -> list[dict]:
    """Rows of results/localisation: per dataset with ground-truth actor boxes (synthetic), the
    localisation variants (asnet, asnet_oracle_spa, asnet_spatial_spa) with the predictions.csv
    of every configured split."""
    from asnet.variants import LOCALISATION_VARIANTS

    return [{"dataset": d.name, "variant": v,
             "predictions": [paths.eval_dir(d.name, s, run_variant(cfg, v)) / "predictions.csv" for s in cfg.splits]}
            for d in cfg.datasets if d.kind == "synthetic" for v in LOCALISATION_VARIANTS]


def localisation_inputs(cfg: Config) -> list[Path]:
    """predictions.csv of every localisation row and split."""
    return [p for r in localisation_runs(cfg) for p in r["predictions"]]


def localisation(cfg: Config, out_tex: Path = Path("results/localisation.tex")) -> pd.DataFrame:
    """results/localisation.{tex,csv}: SPA's IoU with the actor against its bounds (random,
    centre and best constant box; oracle-reward and box-aware SPA), splits pooled."""
    from asnet.report.localisation import write_localisation

    return write_localisation(localisation_runs(cfg), out_tex)


def anchor_check_inputs(cfg: Config) -> list[Path]:
    """The anchor check's inputs: the published files present and their datasets' split-1 data."""
    from asnet.report.anchor import anchor_inputs as inputs

    return inputs(cfg)


def anchor_check(cfg: Config, out_tex: Path = Path("results/anchor_check.tex"), progress: bool = True) -> pd.DataFrame:
    """results/anchor_check.{tex,csv}: Hara et al.'s published fine-tuned models through our data path."""
    from asnet.report.anchor import write_anchor_check

    return write_anchor_check(cfg, out_tex, progress)


def experiment_table_inputs(cfg: Config, table: str) -> list[Path]:
    """Every metrics.json an experiment table reads (its rows' and their baselines')."""
    return sorted({p for r in experiment_runs(cfg, table) for p in (r["metrics"], r["baseline"], *r["replicates"])})


def experiment_table(cfg: Config, table: str, out_tex: Path | None = None) -> pd.DataFrame:
    """results/<table>.{tex,csv}: our top-1 with its bootstrap interval beside the paper's."""
    from asnet.report.tables import write_experiment_table

    out_tex = out_tex or Path("results") / f"{table}.tex"
    return write_experiment_table(table, experiment_runs(cfg, table), out_tex)


def table5_dataset(cfg: Config) -> str:
    """The dataset Table 5 runs on: `report.table5_dataset`, else the first configured one."""
    name = cfg.report.table5_dataset
    if name is None:
        return cfg.datasets[0].name
    known = [d.name for d in cfg.datasets]
    if name not in known:
        raise ConfigError(f"report.table5_dataset: {name!r} is not a configured dataset (configured: "
                          f"{', '.join(known)}); set it to one of them, or to null for the first")
    return name


def table5_inputs(cfg: Config) -> list[Path]:
    """Table 5's dataset's first split: single-stream and ASNet models, manifest, frame index."""
    dataset, split = table5_dataset(cfg), cfg.splits[0]
    return [paths.run_dir(dataset, split, "single") / "model.pt", paths.run_dir(dataset, split, "asnet") / "model.pt",
            paths.manifest(dataset, split), paths.frames_index(dataset)]


def table5(cfg: Config, out_tex: Path = Path("results/table5.tex"), progress: bool = True) -> pd.DataFrame:
    """Table 5 (frozen features + linear SVM) from the single-stream and ASNet runs of
    `report.table5_dataset`'s first split, on `device` with `train.threads` / `train.workers`."""
    from asnet.report.svm import table5 as make_table5

    dataset, split = table5_dataset(cfg), cfg.splits[0]
    return make_table5(
        paths.run_dir(dataset, split, "single") / "model.pt", paths.run_dir(dataset, split, "asnet") / "model.pt",
        paths.manifest(dataset, split), paths.frames_dir(dataset), out_tex, progress,
        device=cfg.device, threads=cfg.train.threads, workers=cfg.train.workers,
    )


def audit_inputs(cfg: Config) -> list[Path]:
    """The tables the audit judges (report.audit_tables: Table 5 through its predictions), the
    anchor check (its verdict heads the audit whatever tables were made) and the coverage records."""
    tables = cfg.report.audit_tables
    return [*(Path(f"results/{t}.tex") for t in tables if t != "table5"),
            *([Path("results/table5_predictions.csv")] if "table5" in tables else []),
            Path("results/anchor_check.csv"), Path("results/paper_audit.csv"),
            *(paths.coverage(d.name, s) for d in cfg.datasets for s in cfg.splits)]


def audit(cfg: Config, out_md: Path = Path("results/audit.md")) -> pd.DataFrame:
    """results/audit.{md,csv}: the paper's claims (asnet.report.claims), each judged from this
    run's predictions (rules in asnet.report.audit). Tables whose runs are missing are
    reported as not judged, so the audit can be made from any subset of the targets."""
    from asnet.report.anchor import audit_lines, flag_sentence
    from asnet.report.audit import coverage_lines, write_markdown
    from asnet.report.audit_summary import mlrc_summary, paper_section
    from asnet.report.claims import build_claims
    from asnet.report.paper_audit import build_paper_audit

    anchor = flag_sentence(out_md.parent / "anchor_check.csv")
    header = (_audit_header(cfg) + "\n".join(coverage_lines(cfg)[0]) + (f"\n\n**{anchor}**" if anchor else "")
              + "\n".join(audit_lines(out_md.parent / "anchor_check.csv")))
    claims, paper = build_claims(cfg), build_paper_audit()
    return write_markdown(claims, header, out_md, summary=mlrc_summary(cfg, claims, paper, out_md.parent),
                          sections=[paper_section(paper)])


def _audit_header(cfg: Config) -> str:
    import subprocess

    names = ", ".join(d.name for d in cfg.datasets)
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=REPO_ROOT, check=False).stdout.strip()
    except OSError:
        sha = ""
    synthetic = any(d.kind == "synthetic" for d in cfg.datasets)
    lines = [
        "# Audit of the paper's claims",
        "",
        f"Preset `{cfg.preset}`, datasets {names}, splits {list(cfg.splits)}, backbone {cfg.model.arch}-{cfg.model.depth} "
        f"(width {cfg.model.width}), {cfg.input.clip_len}-frame clips at {cfg.input.size} px"
        + (f", code {sha}" if sha else "") + ". Generated by `asnet audit` / `snakemake results/audit.md` "
        "from the runs' per-video predictions; every number below is computed, none typed in.",
        "",
        "Rules: a comparison reproduces when it goes the paper's way with a Holm-corrected McNemar p < 0.05 on "
        "the same test videos (pooled over splits and seeds); it does not when it goes significantly the other "
        "way or its whole 95% paired-bootstrap interval lies below the margin (the paper's own gain on its "
        f"dataset, report.audit_margin = {cfg.report.audit_margin:g} points elsewhere); otherwise it cannot be "
        "judged, and the audit states the smallest difference detectable at 80% power (exact McNemar at Holm's "
        "strictest level, alpha / comparisons) and the paired test videos a decision would need. Absolute "
        "numbers reproduce when the paper's value lies in our 95% interval.",
    ]
    if synthetic:
        lines += ["", "This run is on the embedded synthetic dataset, trained from scratch on CPU: it can test the "
                  "paper's *comparative* claims (does SPA help, which fusion is best) on data where the answer is "
                  "known to be learnable, not its UCF-101/HMDB-51 numbers."]
    return "\n".join(lines)


def paper_audit_inputs(cfg: Config) -> list[Path]:
    """The paper's numbers, test-set sizes, repeated experiments and quoted text (workflow/paper)."""
    from asnet.report.paper_audit import PAPER_DIR

    return sorted(PAPER_DIR.glob("*.csv"))


def paper_audit(out_md: Path = Path("results/paper_audit.md"), paper_dir: Path | None = None):
    """results/paper_audit.{md,csv}: the paper's own numbers audited from workflow/paper/*.csv
    alone (what its test sets could decide, where it contradicts itself); no data or runs."""
    from asnet.report.paper_audit import PAPER_DIR, build_paper_audit, write_paper_audit

    audit = build_paper_audit(paper_dir or PAPER_DIR)
    write_paper_audit(audit, out_md)
    return audit


def report_runs(cfg: Config) -> list[Path]:
    """Every run folder the configured tables and figures may read (Table 6's variants, the
    probes, Tables 1-5, SPA's cost, the localisation bounds; the pretraining runs), once each,
    sorted: the runs whose curves and configuration the report can show."""
    evals = {p.parent for p in metric_files(cfg)}
    synthetic = [d.name for d in cfg.datasets if d.kind == "synthetic"]
    evals |= {paths.eval_dir(d, s, v) for d in synthetic for s in cfg.splits for v in PROBES}
    for table in ("table1", "table2", "table3", "table4"):
        evals |= {r[k].parent for r in experiment_runs(cfg, table) for k in ("metrics", "baseline")}
        evals |= {p.parent for r in experiment_runs(cfg, table) for p in r["replicates"]}
    evals |= {r["metrics"].parent for r in spa_cost_runs(cfg)}
    evals |= {p.parent for r in localisation_runs(cfg) for p in r["predictions"]}
    # results/eval/<dataset>/split<k>/<run> -> results/checkpoints/<dataset>/split<k>/<run>
    runs = {paths.run_dir(*paths.parse_run_dir(e)) for e in evals}
    if cfg.pretrain is not None:
        runs |= {pretrain_run_dir(cfg, b) for b in (None, *pretrained_backbones(cfg))}
    return sorted(runs)


def report_inputs(cfg: Config) -> list[Path]:
    """What the report target (`snakemake report_items`) builds, from what exists now: the
    page of every table (and of the audit) whose source is present, Figures 4 and 5 when
    made, and for every trained run of report_runs its curves and configuration (and its
    confusion matrix and metrics.json when evaluated); results/runtime.csv's page always.
    Items of tables not built are absent, so the report can be made from any target's runs."""
    from asnet.report.html import PAGES, page_source

    out = [paths.REPORT_ROOT / f"{name}.html" for name in PAGES if name == "runtime" or page_source(name)[0].exists()]
    out += [p for p in (Path("results/figure4.png"), Path("results/figure5.png")) if p.exists()]
    for run in report_runs(cfg):
        if not (run / "model.pt").exists():
            continue
        out += [paths.report_run_dir(run) / "curves.png", paths.report_run_dir(run) / "config.yaml"]
        if run.parts[1] == "checkpoints":
            ev = paths.eval_dir(*paths.parse_run_dir(run))
            out += [ev / name for name in ("metrics.json", "confusion.png") if (ev / name).exists()]
    return out


def report_page(name: str, out: Path | None = None) -> Path:
    """results/report/<name>.html: one table (or the audit) as a page of the HTML report."""
    from asnet.report.html import render_page

    return render_page(name, out)


def run_report(run_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """A run's training curves (from its dvclive logs) and resolved configuration (from its
    model.pt): results/report/runs/<run>/{curves.png,config.yaml}."""
    from asnet.report.runs import write_run_items

    return write_run_items(run_dir, out_dir)


def runtime(out_csv: Path = Path("results/runtime.csv")) -> pd.DataFrame:
    """results/runtime.csv: the Snakemake benchmark files under results/benchmarks/, summed per stage."""
    from asnet.report.runtime import write_runtime

    return write_runtime(out_csv)


def plan(cfg: Config, out_csv: Path = Path("results/plan.csv"), target: str = "table6", gpu: str = DEFAULT_GPU,
         measure: bool = False) -> pd.DataFrame:
    """results/plan.csv: what every training and evaluation job of `target` costs on a GPU
    (peak memory of one step measured on fake tensors, FLOPs, steps, GPU hours on `gpu`,
    the memory classes it fits); `measure` times real steps on this machine's device
    instead of assuming a rate (asnet.plan)."""
    from asnet.plan.table import plan as make_plan

    return make_plan(cfg, target, gpu, measure, out_csv=out_csv)
