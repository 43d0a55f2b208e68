"""The paper's Figures 4 and 5 from trained runs.

Figure 4: SPA's mean reward and mean PPO loss per training epoch, one line per run, read
from the per-epoch ``history`` that training stores in ``model.pt`` (or, for an unfinished
run, in ``state/last.pt``, or from dvclive's ``plots/metrics/<name>.tsv``).

Figure 5: for the first test videos (one per class first, in class order, then the rest in
manifest order), a few frames of the video's first clip with SPA's final box (solid red),
SPA's initial box (dotted yellow) and, on datasets that have them (the synthetic set), the
actor's ground-truth box on that frame (dashed green). The last columns show Grad-CAM on
the context stream (test-time centre crop, middle frame of the clip): of ASNet and, when a
single-stream model is given, of the single-stream baseline.

Grad-CAM (Selvaraju et al. 2017), per model and clip: A = ``model.backbone.feature_map(x)``
(last conv stage, (1, D, T', H', W')); y = logit of the model's predicted class; channel
weights a_d = mean over (T', H', W') of dy/dA_d; CAM = ReLU(sum_d a_d A_d), trilinearly
upsampled to the crop (T, S, S) and scaled to [0, 1]. For ASNet y depends on the context
stream through A and on the saliency stream through its (fixed) SPA crop; only the context
path is differentiated.

Confusion matrix (per evaluated run, written by the evaluate stage): rows = true class,
columns = predicted class, each row normalised to sum 1 over that class's test videos.

Figures 4 and 5 are written as ``<out_base>.pdf`` and ``<out_base>.png`` at fixed size and dpi
(no tight bounding box), with the PDF's CreationDate removed so identical inputs give
identical bytes.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from asnet.hara import Normalisation  # noqa: E402

log = logging.getLogger(__name__)

DPI = 150
FIG4_SIZE = (9.0, 3.6)  # inches -> 1350 x 540 px at DPI
FIG5_CELL = 1.6  # inches per panel
FIG5_HEADER = 0.5  # inches above the grid for the legend
FRAMES_SHOWN = 3
SPA_METRICS = ("spa_reward", "spa_loss")
PDF_METADATA = {"CreationDate": None}  # no timestamp: byte-identical PDFs
PNG_METADATA: dict[str, str] = {}

STYLE = {
    "spa": {"edgecolor": "red", "linestyle": "-", "linewidth": 1.6},
    "spa_start": {"edgecolor": "yellow", "linestyle": ":", "linewidth": 1.0},
    "gt": {"edgecolor": "lime", "linestyle": "--", "linewidth": 1.2},
}


def _save(fig: plt.Figure, out_base: Path) -> None:
    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_base.with_suffix(".pdf"), dpi=DPI, format="pdf", metadata=PDF_METADATA)
    fig.savefig(out_base.with_suffix(".png"), dpi=DPI, format="png", metadata=PNG_METADATA)
    plt.close(fig)


def fig5_size(n_rows: int, n_cols: int) -> tuple[float, float]:
    """Figure 5's size in inches for a grid of n_rows x n_cols panels."""
    return (FIG5_CELL * n_cols, FIG5_CELL * n_rows + FIG5_HEADER)


def _run_label(run_dir: Path) -> str:
    """results/checkpoints/<dataset>/split<k>/<variant> -> "<dataset>/split<k>"."""
    run_dir = Path(run_dir)
    return f"{run_dir.parent.parent.name}/{run_dir.parent.name}"


def _dvclive_history(run_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch rows from dvclive's plots/metrics/<name>.tsv (step = epoch index)."""
    rows: dict[int, dict[str, Any]] = {}
    for name in SPA_METRICS:
        path = run_dir / "dvclive" / "plots" / "metrics" / f"{name}.tsv"
        if not path.exists():
            continue
        with path.open(newline="") as fh:
            for rec in csv.DictReader(fh, delimiter="\t"):
                step = int(rec["step"])
                rows.setdefault(step, {"epoch": step})[name] = float(rec[name])
    return [rows[k] for k in sorted(rows)]


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """A run's per-epoch metrics: model.pt, else state/last.pt, else dvclive's tsv files."""
    run_dir = Path(run_dir)
    for path in (run_dir / "model.pt", run_dir / "state" / "last.pt"):
        if path.exists():
            ck = torch.load(path, map_location="cpu", weights_only=True)
            return list(ck["history"])
    history = _dvclive_history(run_dir)
    if not history:
        raise FileNotFoundError(f"{run_dir}: no model.pt, state/last.pt or dvclive metrics to plot")
    return history


def figure4(run_dirs: list[Path], out_base: Path) -> None:
    """SPA mean reward (left) and mean PPO loss (right) per epoch, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=FIG4_SIZE, dpi=DPI, layout="constrained")
    titles = {"spa_reward": "SPA mean reward", "spa_loss": "SPA mean loss"}
    plotted = 0
    for run_dir in run_dirs:
        history = read_history(Path(run_dir))
        if not any(k in h for h in history for k in SPA_METRICS):
            raise ValueError(f"{run_dir}: its history has no SPA metrics (not an ASNet run?)")
        epochs = [int(h["epoch"]) + 1 for h in history]
        for ax, key in zip(axes, SPA_METRICS, strict=True):
            values = [float(h.get(key, math.nan)) for h in history]
            ax.plot(epochs, values, marker="o", markersize=3, linewidth=1.2, label=_run_label(Path(run_dir)))
        plotted += 1
    for ax, key in zip(axes, SPA_METRICS, strict=True):
        ax.set_title(titles[key])
        ax.set_xlabel("epoch")
        ax.set_ylabel(key.replace("spa_", ""))
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if plotted:
        axes[1].legend(fontsize=7, loc="best")
    _save(fig, out_base)


# ---------------------------------------------------------------------------- figure 5


def choose_videos(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    """First n test videos: the first (by name) of each class in label order, then the rest."""
    test = manifest[manifest["subset"] == "test"].sort_values(["label", "video"], kind="stable")
    firsts = test.drop_duplicates("label")
    rest = test.drop(index=firsts.index)
    return pd.concat([firsts, rest]).head(n).reset_index(drop=True)


def grad_cam(
    model: torch.nn.Module, x_ctx: torch.Tensor, x_sal: torch.Tensor | None
) -> tuple[np.ndarray, int, tuple[int, int, int]]:
    """Grad-CAM of the predicted class on the context stream. x: (1, 3, T, S, S).

    Returns (cam (T, S, S) in [0, 1], predicted class, feature-map grid (T', H', W')).
    A 1x1 spatial grid (small inputs: the backbone downsamples by 32) cannot localise.
    """
    model.eval()
    with torch.enable_grad():
        fmap = model.backbone.feature_map(x_ctx.detach())  # (1, D, T', H', W')
        f_ctx = F.adaptive_avg_pool3d(fmap, 1).flatten(1)  # (1, D), = backbone.features
        if x_sal is not None:
            with torch.no_grad():
                f_sal = model.features(x_sal)
            logits = model.head(f_ctx, f_sal)
        else:
            logits = model.head(f_ctx)
        pred = int(logits[0].argmax())
        (grads,) = torch.autograd.grad(logits[0, pred], fmap)
    weights = grads.mean(dim=(2, 3, 4), keepdim=True)  # (1, D, 1, 1, 1)
    cam = F.relu((weights * fmap).sum(1, keepdim=True)).detach()  # (1, 1, T', H', W')
    cam = F.interpolate(cam, size=tuple(x_ctx.shape[2:]), mode="trilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    return cam.numpy(), pred, tuple(fmap.shape[2:])


def _denormalize(x: torch.Tensor, norm: Normalisation) -> np.ndarray:
    """(3, S, S) normalised crop -> (S, S, 3) float image in [0, 1]."""
    m = torch.tensor(norm.mean).view(3, 1, 1)
    s = torch.tensor(norm.std).view(3, 1, 1)
    return ((x * s + m) / norm.value_scale).clamp(0, 1).permute(1, 2, 0).numpy()


def _draw_box(ax: plt.Axes, box: Any, style: str) -> None:
    """(x0, y0, x1, y1), x1/y1 exclusive, in pixel units of the shown image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if any(math.isnan(v) for v in (x0, y0, x1, y1)):
        return
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, **STYLE[style]))


def class_names(manifest: pd.DataFrame) -> dict[int, str]:
    """label -> class_name from a manifest's rows ({} without a class_name column)."""
    if "class_name" not in manifest.columns:
        return {}
    return dict(zip(manifest["label"].astype(int), manifest["class_name"].astype(str), strict=True))


def figure5(
    model_path: Path,
    manifest_path: Path,
    frames_dir: Path,
    out_base: Path,
    n_videos: int = 4,
    single_model_path: Path | None = None,
) -> None:
    """SPA boxes on frames of the first n test videos, and Grad-CAM of ASNet (vs single stream)."""
    from asnet.data.clips import VideoClips
    from asnet.data.store import open_boxes
    from asnet.device import select_runtime
    from asnet.train.inputs import clip_to_frame
    from asnet.train.loop import load_trained, stream_inputs

    cfg, variant, model, agent = load_trained(Path(model_path), "cpu")
    if variant.saliency != "spa" or agent is None:
        raise ValueError(f"{model_path}: figure 5 needs an ASNet (SPA) run, got variant {variant.name}")
    single = None
    if single_model_path is not None:
        s_cfg, s_variant, s_model, _ = load_trained(Path(single_model_path), "cpu")
        if s_variant.streams != 1:
            raise ValueError(f"{single_model_path}: expected a single-stream run, got variant {s_variant.name}")
        single = (s_cfg, s_variant, s_model)
    rt = select_runtime("cpu", "off", False)
    manifest = pd.read_csv(manifest_path)
    names = class_names(manifest)
    chosen = choose_videos(manifest, n_videos)
    if chosen.empty:
        raise ValueError(f"{manifest_path}: no test videos")
    ds = VideoClips(chosen, Path(frames_dir), cfg.input.clip_len)
    n_cam = 1 + (single is not None)
    n_rows, n_cols = len(ds), FRAMES_SHOWN + n_cam
    fig, axes = plt.subplots(n_rows, n_cols, figsize=fig5_size(n_rows, n_cols), dpi=DPI, squeeze=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    for r in range(len(ds)):
        item = ds[r]
        clip = item["clips"][:1]  # (1, T, H, W, 3): the first clip
        h, w = int(item["height"]), int(item["width"])
        batch = {
            "clip": clip, "height": torch.tensor([h]), "width": torch.tensor([w]),
            "gt": item["gt"][:1], "label": torch.tensor([int(item["label"])]),
        }
        with torch.no_grad():
            x_ctx, x_sal, episode = stream_inputs(model, agent, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
        assert episode is not None
        spa_box = clip_to_frame(episode.final_boxes, batch["height"], batch["width"])[0]
        start_box = clip_to_frame(episode.boxes[0], batch["height"], batch["width"])[0]
        boxes_path = Path(frames_dir) / f"{item['video']}.boxes.npy"
        frame_gt = np.asarray(open_boxes(boxes_path)) if boxes_path.exists() else None
        t_len = clip.shape[1]
        shown = np.unique(np.linspace(0, t_len - 1, FRAMES_SHOWN).round().astype(int))
        for c in range(FRAMES_SHOWN):
            ax = axes[r, c]
            ax.set_axis_off()
            if c >= len(shown):
                continue
            t = int(shown[c])
            ax.imshow(clip[0, t].numpy(), interpolation="nearest")
            _draw_box(ax, start_box, "spa_start")
            if frame_gt is not None and t < len(frame_gt):
                _draw_box(ax, frame_gt[t], "gt")
            _draw_box(ax, spa_box, "spa")
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.set_title(f"t={t}", fontsize=7)
        label = int(item["label"])
        axes[r, 0].text(
            -0.08, 0.5, f"{item['video']}\n{names.get(label, label)}", transform=axes[r, 0].transAxes,
            fontsize=6, rotation=90, ha="right", va="center",
        )
        t_mid = t_len // 2
        cams = [("ASNet", model, x_ctx, x_sal, cfg)]
        if single is not None:
            s_cfg, s_variant, s_model = single
            s_batch = dict(batch)
            with torch.no_grad():
                s_ctx, _, _ = stream_inputs(s_model, None, s_variant, s_cfg, rt, s_batch, False, gen, 0)
            cams.append(("single", s_model, s_ctx, None, s_cfg))
        for k, (title, m, xc, xs, mcfg) in enumerate(cams):
            cam, pred, grid = grad_cam(m, xc, xs)
            ax = axes[r, FRAMES_SHOWN + k]
            ax.set_axis_off()
            ax.imshow(_denormalize(xc[0, :, t_mid], mcfg.normalisation()), interpolation="nearest")
            ax.imshow(cam[t_mid], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
            mark = "ok" if pred == label else "x"
            ax.set_title(f"{title}: {names.get(pred, pred)} ({mark})", fontsize=6)
            ax.text(0.02, 0.02, f"Grad-CAM {grid[1]}x{grid[2]}", transform=ax.transAxes, fontsize=5,
                    color="white", ha="left", va="bottom")
    handles = [
        Line2D([], [], color=STYLE[k]["edgecolor"], linestyle=STYLE[k]["linestyle"], label=lab)
        for k, lab in (("spa", "SPA final box"), ("spa_start", "SPA initial box"), ("gt", "actor (ground truth)"))
    ]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.02, top=1 - FIG5_HEADER / fig5_size(n_rows, n_cols)[1],
                        wspace=0.05, hspace=0.25)
    _save(fig, out_base)


# ---------------------------------------------------------------------------- confusion matrix

CONFUSION_CELL = 0.12  # inches per class
CONFUSION_MIN = 4.0  # inches: small class counts keep a readable figure


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Row-normalised confusion matrix (n_classes, n_classes): [true, predicted] fraction of
    the true class's videos; a class without test videos is a row of zeros."""
    counts = np.zeros((n_classes, n_classes), dtype=np.float64)
    np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_figure(
    labels: np.ndarray, preds: np.ndarray, n_classes: int, names: dict[int, str], out_png: Path, title: str = ""
) -> np.ndarray:
    """Write the row-normalised confusion matrix of per-video predictions as a PNG (fixed
    size per class count, no timestamp: identical inputs give identical bytes). Returns it."""
    matrix = confusion_matrix(labels, preds, n_classes)
    side = max(CONFUSION_MIN, CONFUSION_CELL * n_classes + 2.0)
    fig, ax = plt.subplots(figsize=(side, side), dpi=DPI, layout="constrained")
    im = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(n_classes)
    tick_names = [names.get(k, str(k)) for k in range(n_classes)]
    fontsize = 7 if n_classes <= 20 else 4
    ax.set_xticks(ticks, tick_names, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, tick_names, fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title, fontsize=8)
    if n_classes <= 20:  # values stay legible only for few classes
        for (r, c), v in np.ndenumerate(matrix):
            if v > 0:
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.5 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=DPI, format="png", metadata=PNG_METADATA)
    plt.close(fig)
    return matrix
