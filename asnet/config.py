"""Configuration: presets merged with overrides, validated at the edge, then typed.

A run is configured by `config/config.yaml` (which names a preset in `config/presets/`)
plus overrides. The merged mapping is validated against
`workflow/schemas/config.schema.yaml` before anything expensive starts; errors name the
offending key and say how to fix it. Values are parsed with `ConfigLoader` (yaml.SafeLoader
plus YAML 1.2 floats such as 1e-3), never eval'd.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from asnet import hara
from asnet.data.store import DEFAULT_JPEG_QUALITY
from asnet.depths import DEPTHS

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
PRESETS_DIR = REPO_ROOT / "config" / "presets"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


# YAML 1.2 numbers that PyYAML's YAML 1.1 float rule leaves as strings: an exponent without a
# dot or without a sign (1e-3, 1E5, 2.5e3) and a signed leading dot (-.5). Every user writes
# `lr: 1e-3`; 1.1 would hand the schema the string '1e-3'.
_YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+
    |[-+]\.[0-9][0-9_]*)$""",
    re.X,
)


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that also reads YAML 1.2 floats (1e-3) as numbers; for config files and --set.

    Built on SafeLoader, so tags such as !!python/object are never constructed (they raise).
    """


# Tried after SafeLoader's own float/int rules, so whatever YAML 1.1 already parsed is unchanged.
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: what is wrong and where (PyYAML's own text spans lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        tag = problem.split("tag", 1)[1].strip(" '").replace("tag:yaml.org,2002:", "!!")
        return f"YAML tags are not allowed ({tag}); write a plain value"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}; close brackets and quotes, or quote the whole value to mean text"


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    kind: str
    root: str | None = None
    splits_dir: str | None = None
    archive: str | None = None
    splits_archive: str | None = None
    allow_missing: bool = False
    synthetic: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FramesConfig:
    short_side: int
    fps: float
    timeout_s: float = 120  # int, as the presets wrote it: the resolved config (config/resolved/) stays unchanged
    workers: int = 1
    chunks: int = 1
    # The stored format (asnet.data.store): npy = uint8 arrays (fastest, ~6.5 MB per
    # video-second at short side 256); jpeg = JPEG frames packed one file per video (~0.4 MB).
    format: str = "npy"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    depth: int
    width: int
    cardinality: int = 32
    fusion: str = "concat"
    pretrained: str | None = None
    pretrained_dir: str | None = None
    no_max_pool: bool = False
    # Which of Hara et al.'s releases the file is (asnet.hara): auto = from its published name.
    pretrained_release: str = "auto"
    # A backbone tensor missing from, or unexpected in, the file stops the run unless false.
    pretrained_strict: bool = True
    # ResNet shortcut "A"/"B"; None = the release's (2018: A for depth 18/34; 2020: B).
    shortcut: str | None = None
    # Not in the paper: each bottleneck block's last BN starts at weight 0 (Goyal et al. 2017),
    # so a deep ResNet/ResNeXt trained from scratch starts as a shallower one; Hara's init
    # (weight 1) leaves ResNet-50/101 and ResNeXt-101 at chance on the Kinetics stand-in.
    # Basic blocks (ResNet-10/18/34) and DenseNet are untouched; loaded weights replace it.
    zero_init_residual: bool = False


@dataclass(frozen=True)
class InputConfig:
    clip_len: int
    size: int
    scales: tuple[float, ...] = (1.0, 0.84089642, 0.70710678, 0.59460356)
    flip: bool = True
    mean: tuple[float, float, float] = (0.4345, 0.4051, 0.3775)
    std: tuple[float, float, float] = (0.2768, 0.2713, 0.2737)
    # auto: a run that starts from Hara et al.'s file takes that release's normalisation
    # (asnet.hara); custom, or no published file: mean/std above on [0, 1] inputs.
    normalization: str = "auto"


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 1e-5
    plateau_patience: int = 3  # not in paper ("when the validation loss reaches a stable level")
    plateau_factor: float = 0.1
    val_fraction: float = 0.1  # UCF-101/HMDB-51 have no validation list: this share of train videos
    workers: int = 0
    amp: str = "auto"
    channels_last: bool | str = "auto"
    threads: int = 0
    # Processes (one GPU each on CUDA) of one training run: > 1 makes the Snakemake rule
    # launch `torchrun --standalone --nproc_per_node N`; 1 trains in the rule's own process.
    nproc_per_node: int = 1
    # Training clips' context crop (and a fixed saliency crop) cut and resized in the DataLoader
    # workers, from a per-clip random stream (seed, epoch, clip) instead of the main process's
    # per-batch generator; SPA's crops stay in the main process (they need the model).
    crop_in_workers: bool = False
    # Micro-batches of batch_size / accum_steps clips whose gradients add up to one optimizer
    # step (and one SPA PPO update) of the whole batch: the preset's batch on a smaller card.
    accum_steps: int = 1
    # BatchNorm layers in eval mode while training (MMAction2's norm_eval): the running
    # statistics of the starting weights normalise every batch and are never updated.
    norm_eval: bool = False
    # Under torchrun, BatchNorm statistics over the global batch (every process's clips),
    # not each process's batch_size / N; one process: no effect.
    sync_bn: bool = False
    # cuDNN deterministic algorithms, CUBLAS_WORKSPACE_CONFIG and deterministic pooling
    # backwards: bit-identical CUDA reruns and resumes, at some speed (CPU runs always are).
    deterministic: bool = False
    # GiB the training process may allocate on its device (0: all of it). On CUDA the
    # allocator is capped at it; on the CPU the first step's measured peak is checked against it.
    memory_limit_gib: float = 0.0
    # Share of the validation videos whose store files may be unreadable before the run stops
    # (0: any one stops it, naming the file). Skipped training videos never stop a run.
    max_val_skipped: float = 0.0


@dataclass(frozen=True)
class SPAConfig:
    actions: int = 3
    train_steps: int = 10
    test_steps: int = 2
    init_box: int = 112
    min_side: int = 56
    omega: float = -5.0
    l1: float = 1.0  # not in paper, nor l2 and the PPO values below (docs/paper-silent.md)
    l2: float = 0.1
    reward_sign: str = "decrease"  # the printed eq. 6 rewards a loss increase (docs/paper-notes.md, item 1)
    gamma: float = 0.9
    clip_eps: float = 0.2
    c1: float = 0.5
    c2: float = 0.01
    ppo_epochs: int = 4
    minibatch: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-5
    hidden: int = 256
    normalize_advantage: bool = True
    update_every: int = 1
    state: str = "paper"
    state_stride: int = 1
    # SPA's own crops (scene and patches) at this fraction of input.size; 1 = the paper.
    state_scale: float = 1.0
    # none = the paper's raw state; running = standardised by a running mean / std (asnet.spa.agent).
    state_norm: str = "none"
    # loss_sign = eq. 6 (sgn of the loss change, reward_sign); oracle_iou = l1 * change of IoU with
    # the ground-truth actor box (synthetic data only), plus eq. 6's l2 penalties.
    reward: str = "loss_sign"

    def state_size(self, input_size: int) -> int:
        """Pixels of SPA's crops for a network input of `input_size` pixels."""
        return max(1, round(input_size * self.state_scale))


@dataclass(frozen=True)
class EvalConfig:
    max_clips: int = 0
    # Test views (asnet.train.evaluate): "hara" = every non-overlapping clip, centre crop
    # (Hara et al., the paper's protocol); "mmaction_10x3" = 10 spread clips x 3 crops.
    views: str = "hara"


TABLE2_BACKBONES = ("resnet18", "resnet50", "resnet101", "densenet121", "resnext101")


AUDIT_TABLES = ("table1", "table2", "table3", "table4", "table5", "table6")


@dataclass(frozen=True)
class ReportConfig:
    """What the report stage tabulates: Table 2's backbone rows (each trains 3 models), and the
    anchor check's published files (asnet.report.anchor)."""

    table2_backbones: tuple[str, ...] = TABLE2_BACKBONES
    # Folder of Hara et al.'s fine-tuned split-1 files, under their published names.
    anchor_dir: str = "data/pretrained"
    # |ours - reported| top-1 points beyond which the anchor check flags the data path. Hara
    # report 3-split means, we evaluate split 1: split-to-split spread is 1-2 points.
    anchor_tolerance: float = 3.0
    # Fraction of a real dataset's official test videos (over the configured splits) below
    # which the audit does not compare our numbers with the paper's: a manifest reduced by
    # allow_missing is another test set. Synthetic sets are always complete.
    min_coverage: float = 1.0
    # The published files' dataset -> the configured dataset they are evaluated on.
    anchor_datasets: tuple[tuple[str, str], ...] = (("ucf101", "ucf101"), ("hmdb51", "hmdb51"))
    # The configured dataset Table 5 (frozen features + SVM) runs on, its first split; None:
    # the first of `datasets`. The paper's Table 5 is HMDB-51 split 1.
    table5_dataset: str | None = None
    # The tables the audit waits for (claims whose runs are missing are "not judged"): a run
    # that makes Table 6 only can have its audit, anchor verdict included, without training
    # Table 2's backbones.
    audit_tables: tuple[str, ...] = AUDIT_TABLES
    # Not in the paper: on a dataset the paper has no numbers for, a comparison "does not
    # reproduce" when its 95% interval lies below this gain (points); on UCF-101/HMDB-51 the
    # paper's own gain is the margin.
    audit_margin: float = 1.0


@dataclass(frozen=True)
class PretrainConfig:
    """The Kinetics stand-in: one single-stream run from scratch on a synthetic *source* set
    (`dataset`, never one of `datasets`), with its own epochs and learning rate; the preset's
    runs fine-tune from its model.pt by naming it in `model.pretrained` (asnet.stages.pretrain)."""

    dataset: DatasetConfig
    epochs: int
    lr: float


# The config sections that decide what a training run learns (given its dataset): what
# the train rule's params digest and what resuming a run compares. The rest (datasets,
# splits, variants, eval, report, preset) says which runs exist and how they are reported.
# `pretrain` counts for a run that fine-tunes from the pretraining run (run_shaping).
TRAINING_SECTIONS = ("seed", "frames", "model", "input", "train", "spa", "pretrain")

# The keys of TRAINING_SECTIONS that say how a run is launched, not what it learns: the one
# list that both the train rule's digest (stages.train_signature) and resuming
# (loop._check_resumable) leave out. frames.timeout_s can decide which videos an extraction
# excludes, but a run learns from the frame store's index, which is the train rule's input
# (a changed index retrains) and which an extraction never revisits for a changed timeout:
# the key itself shapes nothing. frames.short_side and frames.fps shape the frames: they stay.
# train.max_val_skipped decides whether a run stops, never what a finished run learned.
LAUNCH_ONLY_KEYS = frozenset({
    ("train", "workers"), ("train", "threads"), ("train", "nproc_per_node"),
    ("train", "deterministic"), ("train", "memory_limit_gib"), ("train", "max_val_skipped"),
    ("frames", "workers"), ("frames", "chunks"), ("frames", "timeout_s"),
})

# Keys that shape a run (they are in the digest) and that a run may still resume across:
# data order and augmentation derive from (seed, epoch) and the LR schedule from the
# validation losses, so a run stopped after k epochs is the first k epochs of every longer
# one. More epochs continue it; fewer than it already trained are refused.
RESUMABLE_KEYS = frozenset({("train", "epochs")})

# Keys added after runs existed, at the value under which they train exactly what the older
# code trained (their dataclass default above, the one place it is written): left out of
# run_shaping there, so adding a key neither retrains existing checkpoints (the train rule's
# digest) nor stops a killed run from resuming.
NEUTRAL_KEYS: tuple[tuple[str, str], ...] = (
    ("model", "pretrained_release"), ("model", "pretrained_strict"), ("model", "shortcut"),
    ("input", "normalization"), ("spa", "state_norm"), ("spa", "reward"),
    ("frames", "format"), ("frames", "jpeg_quality"), ("train", "crop_in_workers"),
    ("train", "accum_steps"), ("train", "norm_eval"), ("model", "zero_init_residual"),
    ("train", "sync_bn"),
)
_SECTIONS = {"frames": FramesConfig, "model": ModelConfig, "input": InputConfig, "train": TrainConfig,
             "spa": SPAConfig, "eval": EvalConfig}


def field_default(section: str, key: str) -> Any:
    """The dataclass default of `section.key` (ConfigError when the key has none)."""
    for f in dataclasses.fields(_SECTIONS[section]):
        if f.name == key and f.default is not dataclasses.MISSING:
            return f.default
    raise ConfigError(f"{section}.{key}: no default; every preset must set it")


NEUTRAL_DEFAULTS: dict[tuple[str, str], Any] = {key: field_default(*key) for key in NEUTRAL_KEYS}


def run_shaping(config: dict[str, Any]) -> dict[str, Any]:
    """The TRAINING_SECTIONS of a plain config (`Config.to_dict()`, or a checkpoint's)
    without LAUNCH_ONLY_KEYS: what decides what a training run learns, given its dataset."""
    keep = {k: copy.deepcopy(config.get(k)) for k in TRAINING_SECTIONS}
    for section, key in LAUNCH_ONLY_KEYS:
        if isinstance(keep.get(section), dict):
            keep[section].pop(key, None)  # absent from checkpoints older than the key
    for (section, key), neutral in NEUTRAL_DEFAULTS.items():
        if isinstance(keep.get(section), dict) and key in keep[section] and keep[section][key] == neutral:
            del keep[section][key]
    # The pretraining shapes only the runs that start from it; left out of the others (and of
    # runs older than the section), so it neither retrains nor blocks them.
    if not starts_from_pretraining(config):
        del keep["pretrain"]
    return keep


def uses_pretrain(config: dict[str, Any]) -> bool:
    """Whether a plain config's runs start from its pretraining run (`model.pretrained` names
    results/pretrain/<pretrain.dataset.name>/model.pt)."""
    from asnet import paths

    pre, pretrained = config.get("pretrain"), (config.get("model") or {}).get("pretrained")
    if not pre or not pretrained or not isinstance(pre.get("dataset"), dict):
        return False
    return Path(pretrained) == paths.pretrain_model(pre["dataset"]["name"])


def _names_backbone_run(pretrained: str, source: str) -> bool:
    from asnet import paths

    path = Path(pretrained)
    return path.name == "model.pt" and path.parent.parent == paths.pretrain_backbone_dir(source, "_").parent


def starts_from_pretraining(config: dict[str, Any]) -> bool:
    """Whether a plain config's runs start from one of its pretraining runs: the preset's
    backbone's (uses_pretrain) or Table 2's other backbones'
    (results/pretrain/backbones/<source>/<key>/model.pt); `pretrain:` shapes either."""
    pre, pretrained = config.get("pretrain"), (config.get("model") or {}).get("pretrained")
    if uses_pretrain(config):
        return True
    return bool(pre and pretrained and isinstance(pre.get("dataset"), dict)
                and _names_backbone_run(pretrained, pre["dataset"]["name"]))


@dataclass(frozen=True)
class Config:
    preset: str
    seed: int
    device: str
    datasets: tuple[DatasetConfig, ...]
    splits: tuple[int, ...]
    variants: tuple[str, ...]
    frames: FramesConfig
    model: ModelConfig
    input: InputConfig
    train: TrainConfig
    spa: SPAConfig
    eval: EvalConfig
    report: ReportConfig = ReportConfig()
    pretrain: PretrainConfig | None = None
    # Replicate runs, one per seed (asnet.seeds); None: the one run at `seed`. Like `splits`,
    # it says which runs exist, not what one learns: no run's digest holds it.
    seeds: tuple[int, ...] | None = None

    def dataset(self, name: str) -> DatasetConfig:
        """The dataset entry called `name` (or the pretraining source); ConfigError listing the known ones otherwise."""
        for d in self.datasets:
            if d.name == name:
                return d
        if self.pretrain is not None and self.pretrain.dataset.name == name:
            return self.pretrain.dataset
        known = ", ".join(d.name for d in self.datasets)
        if self.pretrain is not None:
            known += f"; pretraining source: {self.pretrain.dataset.name}"
        raise ConfigError(f"datasets: no dataset named {name!r} (configured: {known})")

    def is_source(self, name: str) -> bool:
        """Whether `name` is the pretraining source set (all its videos train, none is tested)."""
        return self.pretrain is not None and self.pretrain.dataset.name == name

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists, dicts, scalars), e.g. for checkpoints and logs."""
        return _plain(asdict(self))

    def normalisation(self) -> hara.Normalisation:
        """The input normalisation the network is trained and evaluated with (asnet.hara)."""
        return hara.normalisation_of(asdict(self.model), asdict(self.input))

    def shortcut(self) -> str | None:
        """The ResNet shortcut to build (None: the 2018 release's per-depth default)."""
        return hara.shortcut_of(asdict(self.model))


def resolved_yaml(cfg: Config) -> str:
    """`cfg` as a full config file: every key a run sees, and `--config FILE` loads it back to `cfg`.

    config/resolved/<preset>.yaml hold this for each preset (tests/test_presets.py checks they
    are current), so a reader sees in one file what a trimmed preset inherits.
    """
    return (f"# Every key as a run sees it: preset `{cfg.preset}` (and any overrides) resolved.\n"
            f"# config/resolved/{cfg.preset}.yaml is the preset alone, generated by\n"
            f"#   asnet config --set preset={cfg.preset} > config/resolved/{cfg.preset}.yaml\n"
            f"# Edit config/presets/{cfg.preset}.yaml (or a dataclass default in asnet/config.py), not that file.\n"
            + yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `override` into a copy of `base` (mappings merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_value(raw: str, where: str) -> Any:
    """One value as `--set` reads it: a YAML scalar or flow collection (ConfigLoader: safe,
    with YAML 1.2 floats), never evaluated; ConfigError starting with `where` when malformed."""
    try:
        return yaml.load(raw, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not a plain YAML value: {_yaml_problem(exc)}") from None


def _typed(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return parse_value(value, where)
    if isinstance(value, dict):
        return {k: _typed(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def typed_snakemake_config(config: dict[str, Any], given: Any) -> dict[str, Any]:
    """The top-level entries of Snakemake's merged `config` that its `--config` set (`given`),
    with their text typed as `--set` types it, merged over the rest of each entry.

    Snakemake reads `--config train={batch_size: 4}` with YAML's base loader, which makes every
    value text ('4'); `--set train.batch_size=4` gives 4. Only what `--config` gave is retyped:
    text in config files is already typed by their YAML."""
    out: dict[str, Any] = {}
    for key, value in dict(given or {}).items():
        typed = _typed(value, f"--config {key}")
        current = config.get(key)
        out[key] = deep_merge(current, typed) if isinstance(current, dict) and isinstance(typed, dict) else typed
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `["train.epochs=3", "spa.reward_sign=printed"]` into a nested mapping.

    Values are parsed as YAML scalars/flow collections (ConfigLoader: safe, with YAML 1.2
    floats), never evaluated. Malformed YAML, tags and a key set both as a value and as a
    section raise ConfigError naming the override.
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key part in {key!r}; expected e.g. train.epochs=3")
        value = parse_value(raw, f"override {item!r}")
        node = out
        for i, part in enumerate(parts[:-1]):
            if part in node and not isinstance(node[part], dict):
                section = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"override {item!r}: {section} was already set to {node[part]!r} by an earlier --set, "
                    f"so it has no key {parts[i + 1]!r}; drop one of the two overrides"
                )
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (ConfigLoader), with a clear error for a missing, unreadable or malformed file."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML config file such as config/config.yaml")
    try:
        data = yaml.load(path.read_text(), Loader=ConfigLoader) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it as a YAML text file: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_preset(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset file, merged over the preset its `base:` key names (if any).

    Mappings merge key by key. A preset's `replace:` lists dotted keys (`pretrain`,
    `datasets`, `spa.foo`) whose value it takes whole instead: a section the base fills in
    that this preset means differently (its own source set) must not keep the base's extra keys.
    """
    if name in _seen:
        raise ConfigError(f"preset {name!r}: circular `base:` chain {' -> '.join(_seen + (name,))}")
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        via = f" (the `base:` of preset {_seen[-1]!r})" if _seen else ""
        raise ConfigError(f"preset: unknown preset {name!r}{via}; choose one of: {known}")
    data = load_yaml(path)
    base = data.pop("base", None)
    replace = data.pop("replace", [])
    if not base:
        if replace:
            raise ConfigError(f"{path}: `replace:` needs a `base:` preset whose keys it replaces")
        return data
    merged = load_preset(base, _seen + (name,))
    if not isinstance(replace, list) or not all(isinstance(k, str) for k in replace):
        raise ConfigError(f"{path}: `replace:` must be a list of dotted keys, e.g. [pretrain, spa.state]")
    for dotted in replace:
        if _dotted(data, dotted) is _MISSING:
            raise ConfigError(f"{path}: `replace:` names {dotted!r}, which this preset does not set; "
                              f"set it here or drop it from `replace:`")
        _dotted(merged, dotted, pop=True)
    return deep_merge(merged, data)


_MISSING = object()


def _dotted(data: dict[str, Any], dotted: str, pop: bool = False) -> Any:
    """The value at `a.b.c` in nested mappings (removed if `pop`), or _MISSING."""
    *parents, last = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or last not in node:
        return _MISSING
    return node.pop(last) if pop else node[last]


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Merge the preset named by `raw["preset"]` with the rest of `raw` and validate it."""
    preset = raw.get("preset", "default")
    preset_path = PRESETS_DIR / f"{preset}.yaml"
    if not isinstance(preset, str) or not preset_path.exists():
        known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise ConfigError(f"preset: unknown preset {preset!r}; choose one of: {known}")
    merged = deep_merge(load_preset(preset), {k: v for k, v in raw.items() if k != "preset"})
    merged["preset"] = preset
    validate(merged)
    return merged


def validate(data: dict[str, Any]) -> None:
    """Validate a merged config against the JSON schema; ConfigError names the key.

    A YAML 1.2 float written where the schema asks for a number is converted in place first:
    Snakemake reads config files with YAML 1.1 rules, so its `config` holds `lr: 1e-3` as '1e-3'.
    """
    _check_seeds(data)
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    _yaml12_numbers(data, validator)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        _check_relations(data)
        _check_pretrained(data)
        return
    lines = []
    for err in errors[:10]:
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            allowed = ", ".join(sorted(err.schema.get("properties", {})))
            lines.append(f"{where}: {err.message}; allowed keys here: {allowed}")
        else:
            lines.append(f"{where}: {err.message}")
    raise ConfigError(
        "invalid configuration (see workflow/schemas/config.schema.yaml):\n  " + "\n  ".join(lines)
    )


def _yaml12_numbers(data: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    """Turn strings such as '1e-3' into floats where the schema wants a number (see ConfigLoader)."""
    for err in validator.iter_errors(data):
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if (err.validator == "type" and "number" in wanted and err.absolute_path
                and isinstance(err.instance, str) and _YAML12_FLOAT.match(err.instance.strip())):
            *parents, last = err.absolute_path
            node = data
            for key in parents:
                node = node[key]
            node[last] = float(err.instance.strip().replace("_", ""))


def _check_seeds(data: dict[str, Any]) -> None:
    """`seeds` is null or a list of distinct non-negative ints holding `seed`: one line naming
    the bad value and the fix (the schema's messages would not say what the list means)."""
    seeds = data.get("seeds")
    if seeds is None:
        return
    what = "one training run per seed, e.g. seeds: [0, 1, 2]; leave it out for the one run at `seed`"
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"seeds: {seeds!r} is not a non-empty list of seeds; write {what}")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ConfigError(f"seeds: item {i} ({s!r}) is not a non-negative integer; write {what}")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"seeds: {', '.join(map(str, twice))} listed more than once in {seeds}; list each seed "
                          "once (two runs of one seed train the same weights)")
    seed = data.get("seed")
    if isinstance(seed, int) and seed not in seeds:
        raise ConfigError(f"seeds: {seeds} does not hold `seed` ({seed}), the run kept at the paths without a "
                          f"seed folder; add {seed} to seeds, or set seed: to one of {seeds}")


MIN_STATE_SIZE = 8  # below this a 3D ResNet's feature map of SPA's crops is all padding


def _check_relations(data: dict[str, Any]) -> None:
    """Constraints between keys that a JSON schema cannot state."""
    model = data.get("model", {})
    arch, depth = model.get("arch"), model.get("depth")
    if arch in DEPTHS and depth not in DEPTHS[arch]:
        valid = ", ".join(map(str, DEPTHS[arch]))
        archs = " or ".join(a for a, depths in DEPTHS.items() if depth in depths)
        other = f", or model.arch to {archs}" if archs else ""
        raise ConfigError(f"model.depth: {arch} has no depth {depth}; set model.depth to one of {valid}{other}")
    if arch == "resnext" and model.get("width", 16) < 16:
        # Hara's ResNeXt block has cardinality x (2 width // 32) channels: 0 below width 16.
        raise ConfigError(f"model.width: resnext needs width >= 16, got {model['width']}; raise model.width")
    size = data.get("input", {}).get("size")
    scale = data.get("spa", {}).get("state_scale", 1.0)
    if size is not None and round(size * scale) < MIN_STATE_SIZE:
        raise ConfigError(
            f"spa.state_scale: {scale} x input.size {size} = {round(size * scale)} pixels for SPA's crops; "
            f"raise spa.state_scale to at least {MIN_STATE_SIZE / size:.2f}"
        )
    train = data.get("train", {})
    batch, accum, nproc = train.get("batch_size"), train.get("accum_steps", 1), train.get("nproc_per_node", 1)
    if batch is not None and batch % (accum * nproc):
        fits = [k for k in range(1, batch + 1) if batch % (k * nproc) == 0]
        raise ConfigError(
            f"train.accum_steps: batch_size {batch} must split into nproc_per_node {nproc} x accum_steps {accum} "
            f"equal micro-batches; set train.accum_steps to one of {', '.join(map(str, fits))}"
        )
    _check_pretrain(data)


def _check_pretrain(data: dict[str, Any]) -> None:
    """The source set shares no video with a target, and `model.pretrained` names the configured
    pretraining run if it names one at all."""
    from asnet import paths

    pre = data.get("pretrain")
    pretrained = data.get("model", {}).get("pretrained")
    if pre is not None:
        source = pre["dataset"]
        if source["name"] == paths.PRETRAIN_BACKBONES_ROOT.name:  # its run would be that folder
            raise ConfigError(f"pretrain.dataset.name: {source['name']!r} is the folder of the other backbones' "
                              f"pretraining runs ({paths.PRETRAIN_BACKBONES_ROOT}); give the source set another name")
        for d in data.get("datasets", []):
            if d["name"] == source["name"]:
                raise ConfigError(f"pretrain.dataset.name: {source['name']!r} is also a target in `datasets`; "
                                  "give the source set its own name")
            # The generator is deterministic from its seed: the same seed would render the same
            # backgrounds and, for the shared classes, the same videos as the target.
            if d["kind"] != "synthetic":
                continue
            seed = d.get("synthetic", {}).get("seed")
            if seed is None:
                from asnet.data.synthetic import SyntheticSpec

                seed = SyntheticSpec.seed
            if source["synthetic"]["seed"] == seed:
                raise ConfigError(f"pretrain.dataset.synthetic.seed: {seed} is also datasets[{d['name']}]'s seed, so "
                                  "the source would contain target videos; give the source set another seed")
    if pretrained and Path(pretrained).parts[:2] == paths.PRETRAIN_ROOT.parts:
        if pre is None:
            raise ConfigError(f"model.pretrained: {pretrained} names a pretraining run, but the config has no "
                              "`pretrain:` section; add one (see config/presets/default.yaml) or set model.pretrained: null")
        want = paths.pretrain_model(pre["dataset"]["name"])
        # Table 2's runs of another backbone fine-tune that backbone's own run (asnet.stages.run_config)
        if Path(pretrained) != want and not _names_backbone_run(pretrained, pre["dataset"]["name"]):
            raise ConfigError(f"model.pretrained: {pretrained} is not the configured pretraining run's model.pt; "
                              f"set it to {want} (pretrain.dataset.name is {pre['dataset']['name']!r})")


def _check_pretrained(data: dict[str, Any]) -> None:
    """The model section must match the published checkpoint it starts from (asnet.hara)."""
    model, inp = data.get("model", {}), data.get("input", {})
    problems = hara.check_model(model, inp.get("clip_len", 16))
    if problems:
        raise ConfigError("\n  ".join(problems))


def _report(data: dict[str, Any]) -> ReportConfig:
    out: dict[str, Any] = dict(data)
    if "table2_backbones" in out:
        out["table2_backbones"] = tuple(out["table2_backbones"])
    if "audit_tables" in out:
        out["audit_tables"] = tuple(out["audit_tables"])
    if "anchor_datasets" in out:
        pairs = out["anchor_datasets"]
        out["anchor_datasets"] = tuple((str(k), str(v)) for k, v in (pairs.items() if isinstance(pairs, dict) else pairs))
    return ReportConfig(**out)


def from_dict(data: dict[str, Any]) -> Config:
    """Typed view of an already-resolved mapping."""
    inp = dict(data["input"])
    for key in ("scales", "mean", "std"):
        if key in inp:
            inp[key] = tuple(inp[key])
    return Config(
        preset=data["preset"],
        seed=data["seed"],
        device=data["device"],
        datasets=tuple(DatasetConfig(**d) for d in data["datasets"]),
        splits=tuple(data["splits"]),
        variants=tuple(data["variants"]),
        frames=FramesConfig(**data["frames"]),
        model=ModelConfig(**data["model"]),
        input=InputConfig(**inp),
        train=TrainConfig(**data["train"]),
        spa=SPAConfig(**data.get("spa", {})),
        eval=EvalConfig(**data.get("eval", {})),
        report=_report(data.get("report", {})),
        pretrain=_pretrain(data.get("pretrain")),
        seeds=None if data.get("seeds") is None else tuple(data["seeds"]),
    )


def _pretrain(data: dict[str, Any] | None) -> PretrainConfig | None:
    if data is None:
        return None
    return PretrainConfig(dataset=DatasetConfig(**data["dataset"]), epochs=data["epochs"], lr=data["lr"])


def with_overrides(cfg: Config, overrides: dict[str, Any] | tuple[tuple[str, Any], ...]) -> Config:
    """`cfg` with dotted-key overrides ({"model.fusion": "sum"}) applied and re-validated."""
    items = overrides.items() if isinstance(overrides, dict) else overrides
    if not items:
        return cfg
    nested: dict[str, Any] = {}
    for key, value in items:
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    merged = deep_merge(cfg.to_dict(), nested)
    validate(merged)
    return from_dict(merged)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load `config/config.yaml` (or `path`), apply KEY=VALUE overrides, validate, type."""
    raw = load_yaml(path or REPO_ROOT / "config" / "config.yaml")
    raw = deep_merge(raw, parse_overrides(overrides or []))
    return from_dict(resolve(raw))
