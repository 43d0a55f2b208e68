"""Per-run report items: the training curves of a run's dvclive logs and the configuration
it trained with, both read from files training already wrote (no retraining).

A run folder is `results/checkpoints/<dataset>/split<k>/<variant>` or the pretraining run
`results/pretrain/<source>`; its items go to the same path under `results/report/runs/`
(`curves.png`, `config.yaml`). The curves come from dvclive's `plots/metrics/<name>.tsv`
(one row per epoch, step = epoch index), which `dvc plots show` reads too; `model.pt` gives
the resolved configuration (after the variant's overrides), the class count (chance level
on the accuracy panel) and the provenance of the starting weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from asnet.paths import report_run_dir  # noqa: E402
from asnet.report.figures import DPI, PNG_METADATA  # noqa: E402

# Panels of the curves figure: (title, metrics, y scale); a panel whose metrics the run did
# not log (SPA's on a single stream, validation without a validation subset) is left out.
PANELS = (
    ("loss", ("train_loss", "val_loss"), "linear"),
    ("accuracy", ("train_acc", "val_acc"), "linear"),
    ("SPA", ("spa_reward", "spa_loss", "spa_iou"), "linear"),
    ("learning rate", ("lr",), "log"),
)
PANEL_SIZE = (3.2, 2.8)  # inches per panel


def read_dvclive(run_dir: Path) -> pd.DataFrame:
    """Every metric dvclive logged for a run, one row per epoch (index `epoch`, from 1)."""
    folder = Path(run_dir) / "dvclive" / "plots" / "metrics"
    files = sorted(folder.glob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no dvclive logs; training writes them beside model.pt "
                                f"(retrain the run, or restore {Path(run_dir)} with `dvc pull`)")
    cols = [pd.read_csv(f, sep="\t").set_index("step")[f.stem] for f in files]
    df = pd.concat(cols, axis=1).sort_index()
    df.index = df.index.astype(int) + 1
    df.index.name = "epoch"
    return df


def load_run(run_dir: Path) -> dict[str, Any]:
    """model.pt's metadata (no tensors needed: memory-mapped, weights never read)."""
    import torch

    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained model; train the run first (`snakemake {path}`)")
    from asnet.train.checkpoint import CheckpointError, load_error_detail

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: does not load with weights_only=True ({load_error_detail(exc)}); "
                              "delete it and train the run again") from None
    return {k: v for k, v in ck.items() if k not in ("model", "agent")}


def curves_figure(run_dir: Path, out_png: Path, num_classes: int | None = None) -> Path:
    """The run's training curves (loss, accuracy with the chance level 1/num_classes, SPA's
    reward / loss / IoU with the actor, learning rate) per epoch, as a PNG."""
    df = read_dvclive(run_dir)
    panels = [(t, [m for m in ms if m in df.columns], s) for t, ms, s in PANELS]
    panels = [p for p in panels if p[1]]
    fig, axes = plt.subplots(1, len(panels), figsize=(PANEL_SIZE[0] * len(panels), PANEL_SIZE[1]), dpi=DPI,
                             layout="constrained", squeeze=False)
    for ax, (title, metrics, scale) in zip(axes[0], panels, strict=True):
        for m in metrics:
            ax.plot(df.index, df[m], marker="o", markersize=3, linewidth=1.2, label=m)
        if title == "accuracy" and num_classes:
            ax.axhline(1.0 / num_classes, color="grey", linestyle=":", linewidth=1.0, label="chance")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_yscale(scale)
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(Path(run_dir).as_posix(), fontsize=9)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=DPI, format="png", metadata=PNG_METADATA)
    plt.close(fig)
    return out_png


def config_yaml(run_dir: Path, meta: dict[str, Any]) -> str:
    """The configuration a run trained with (model.pt's `config`: the preset after the
    variant's overrides), preceded by comments naming the run, its code and starting weights."""
    pretrained = meta.get("pretrained")
    start = f"{pretrained.get('path')} (sha256 {pretrained.get('sha256')})" if pretrained else "scratch"
    header = [
        f"# Resolved configuration of {Path(run_dir).as_posix()}, read from its model.pt.",
        f"# variant: {meta.get('variant', 'single')}; classes: {meta.get('num_classes', '?')}; "
        f"epochs trained: {len(meta.get('history', []))}",
        f"# code: {meta.get('git_sha', 'unknown')}; starting weights: {start}",
    ]
    return "\n".join(header) + "\n" + yaml.safe_dump(meta["config"], sort_keys=False)


def write_run_items(run_dir: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """curves.png and config.yaml of one run into `out_dir` (default: paths.report_run_dir)."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else report_run_dir(run_dir)
    meta = load_run(run_dir)
    curves = curves_figure(run_dir, out_dir / "curves.png", meta.get("num_classes"))
    config = out_dir / "config.yaml"
    config.write_text(config_yaml(run_dir, meta))
    return {"curves": curves, "config": config}
