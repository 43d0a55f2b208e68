"""Video-level evaluation (Sec. 4.1.4, following Hara et al.): test clips, the context
stream's test crop(s) + the saliency stream's crop, video score = mean of the clips'
softmax scores.

Test views (`eval.views`):
- ``hara`` (default): Hara et al.'s test code (3D-ResNets-PyTorch) exactly: every
  non-overlapping clip from the first frame, the last partial clip loop-padded with its own
  frames (``asnet.data.clips.hara_clip_indices``); one spatial view, the centred square of
  the short side resized to ``input.size`` (= short side resized to the input size, then
  centre crop).
- ``mmaction_10x3``: MMAction2's test pipeline: 10 clips with evenly spread starts
  (SampleFrames(num_clips=10, test_mode=True)) x 3 crops, the short-side square at the
  start / centre / end of the long side (ThreeCrop after Resize(-1, size)). The context
  stream sees the 3 crops; the saliency stream's box (SPA, or a fixed box) is computed once
  per clip and shared by its 3 crops. Video score = mean of the 30 views' softmax.

Outputs in the eval dir: ``metrics.json`` (top-1/top-5 video accuracy, clip accuracy, mean
class accuracy, test videos listed / evaluated / excluded at extraction), ``predictions.csv``
(one row per video), ``scores.npz`` (every view's softmax scores, enough to recompute every
metric without the model) and ``confusion.png``.

On datasets with ground-truth actor boxes (the synthetic set) it also measures how well
the saliency-stream box covers the actor: mean IoU of SPA's box, of a centre box and of a
random box of SPA's initial size, and of the best constant box of the split's training clips
(asnet.spa.bounds), each against the actor's box over the clip.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from asnet.config import Config, ConfigError, EvalConfig, run_shaping
from asnet.data.clips import EVAL_VIEWS, VideoClips
from asnet.data.crops import Frames, box_iou, centre_crop_boxes, square_at
from asnet.data.splits import read_coverage
from asnet.device import Runtime, configure_backends, select_runtime, set_threads
from asnet.progress import CONSOLE, due
from asnet.spa.agent import ActorCritic
from asnet.spa.bounds import constant_boxes, split_constant_box
from asnet.train import checkpoint
from asnet.train.inputs import clip_to_frame, fixed_saliency_boxes
from asnet.train.loop import rebuild_trained, stream_inputs
from asnet.variants import Variant

log = logging.getLogger(__name__)

# Spatial crops per clip of each `eval.views`: square_at positions of the short-side square.
# "tl" / "br" are the start / end of the long side (left / right, or top / bottom).
VIEW_CROPS = {"hara": ("c",), "mmaction_10x3": ("tl", "c", "br")}
TOP_K = 5
# The extras key of SPA's final box per clip (model_scorer's with_boxes): not a per-clip value.
SPA_BOX = "spa_box"

# (clips uint8 (N, T, H, W, 3), heights (N,), widths (N,), gt boxes (N, 4), context boxes
# (N, V, 4)) -> softmax scores (N, V, C), or (scores, per-clip extras {name: (N,)}), e.g. IoUs.
# A scorer with one spatial input crops boxes[:, v] (asnet.data.crops.crop_resize) for view v.
ScoreFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor | tuple[Tensor, dict[str, Tensor]]]


def view_boxes(views: str, heights: Tensor, widths: Tensor) -> Tensor:
    """Context-stream boxes of every spatial view of each clip under `views`. -> (N, V, 4)"""
    if views not in VIEW_CROPS:
        raise ValueError(f"unknown eval.views {views!r}; use one of {', '.join(EVAL_VIEWS)}")
    h, w = heights.float(), widths.float()
    side = torch.minimum(h, w)
    return torch.stack([square_at(pos, side, h, w) for pos in VIEW_CROPS[views]], dim=1)


def model_scorer(
    model: torch.nn.Module,
    agent: ActorCritic | None,
    variant: Variant,
    cfg: Config,
    rt: Runtime,
    gen: torch.Generator,
    constant_box: tuple[float, float, float] | None = None,
    with_boxes: bool = False,
) -> ScoreFn:
    """ScoreFn of a trained run (single stream, Siamese or ASNet): the context stream's input
    is each view's box for the conventional context (the variant's own box otherwise: the
    probes' full frame / centre / oracle); the saliency stream's input comes from
    ``stream_inputs`` (SPA's test-time episode or a fixed box), once per clip.

    On clips with actor boxes the extras are the IoU with the actor of SPA's box (iou_spa),
    of a centre and a random box of SPA's initial size, and of `constant_box` (frame-relative,
    asnet.spa.bounds: the best constant box of the training clips) as iou_best_constant.
    `with_boxes` adds SPA's final box per clip (frame pixels, (N, 4)) as extras[SPA_BOX]
    (``score_video`` takes it out of the per-clip values): what `asnet predict` shows."""
    inp, norm = cfg.input, cfg.normalisation()

    def score(clips: Tensor, heights: Tensor, widths: Tensor, gt: Tensor, boxes: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # No labels at test time: stream_inputs reads them only in training. The clips cross
        # to the device once; every view is cropped there.
        frames = Frames.of(clips, heights, widths, rt.device, rt.crop_method)
        batch = {"clip": frames, "height": heights, "width": widths, "gt": gt}
        x_ctx, x_sal, episode = stream_inputs(model, agent, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
        centre = centre_crop_boxes(heights, widths)
        cache: dict[int, Tensor] = {}
        views = []
        for v in range(boxes.shape[1]):
            # stream_inputs already cut the centre crop (and the probes' fixed box): reuse it.
            own = variant.context != "conventional" or torch.equal(boxes[:, v], centre)
            key = -1 if own else v
            if key not in cache:
                x = x_ctx if own else rt.to_input(frames.crop(boxes[:, v], inp.size, norm))
                with rt.autocast():
                    cache[key] = torch.softmax(model(x, x_sal).float(), dim=1)
            views.append(cache[key])
        extras: dict[str, Tensor] = {}
        if not torch.isnan(gt).any():
            sal = {"center": fixed_saliency_boxes("center", cfg, heights, widths, gen),
                   "random": fixed_saliency_boxes("random", cfg, heights, widths, gen)}
            if episode is not None:
                sal["spa"] = clip_to_frame(episode.final_boxes, heights, widths).cpu()
            if constant_box is not None:
                sal["best_constant"] = constant_boxes(constant_box, heights, widths)
            extras = {f"iou_{k}": box_iou(b, gt) for k, b in sal.items()}
        if with_boxes and episode is not None:
            extras[SPA_BOX] = clip_to_frame(episode.final_boxes, heights, widths).cpu()
        return torch.stack(views, dim=1).cpu(), extras

    return score


def video_outcomes(video_scores: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class, top-1 correct, top-k correct with k = min(5, C)) per video."""
    pred = video_scores.argmax(axis=1) if len(video_scores) else np.zeros(0, dtype=np.int64)
    k = min(TOP_K, video_scores.shape[1])
    top_k = np.argsort(-video_scores, axis=1, kind="stable")[:, :k]
    return pred, pred == label, (top_k == label[:, None]).any(axis=1)


def score_metrics(label: np.ndarray, clip_video: np.ndarray, clip_scores: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Accuracies from per-view scores: (metrics, video scores (videos, C)).

    Video score = mean of its views' softmax scores (float64). top1 / top5: video accuracy
    (top-k with k = min(5, C)); clip_top1: accuracy of every view's own argmax;
    mean_class_top1: mean over the classes present of per-class video top-1.
    """
    n_videos = len(label)
    if n_videos == 0:
        nan = math.nan
        return {"top1": nan, "top5": nan, "clip_top1": nan, "mean_class_top1": nan}, np.zeros((0, 0))
    sums = np.zeros((n_videos, clip_scores.shape[1]))
    np.add.at(sums, clip_video, clip_scores.astype(np.float64))
    video_scores = sums / np.bincount(clip_video, minlength=n_videos)[:, None]
    _, correct, correct_k = video_outcomes(video_scores, label)
    return {
        "top1": float(correct.mean()),
        "top5": float(correct_k.mean()),
        "clip_top1": float((clip_scores.argmax(axis=1) == label[clip_video]).mean()),
        "mean_class_top1": float(np.mean([correct[label == c].mean() for c in np.unique(label)])),
    }, video_scores


@dataclass
class VideoScore:
    """One video's test views scored: N clips x V spatial views."""

    scores: Tensor  # (N, V, C) softmax of every view
    boxes: Tensor  # (N, V, 4) the context stream's box of every view, frame pixels
    frames: Tensor  # (N, T) the frame indices of every clip
    extras: dict[str, Tensor]  # per-clip values (N,), e.g. IoUs with the actor
    spa_box: Tensor | None  # (N, 4) SPA's final box of every clip (model_scorer's with_boxes), frame pixels

    def view_scores(self) -> np.ndarray:
        """(N * V, C) float32: this video's rows of scores.npz's clip_scores, clip-major."""
        n, v = self.scores.shape[:2]
        return self.scores.reshape(n * v, -1).float().numpy()

    def view_index(self) -> np.ndarray:
        """(N * V,) each row's spatial view: scores.npz's clip_view."""
        n, v = self.scores.shape[:2]
        return np.tile(np.arange(v), n)

    def view_starts(self) -> np.ndarray:
        """(N * V,) each row's first frame: scores.npz's clip_start."""
        return np.repeat(self.frames[:, 0].numpy(), self.scores.shape[1])


def score_video(score_fn: ScoreFn, item: dict[str, Any], views: str, max_clips: int = 0) -> VideoScore:
    """Score one video's test clips (an item of asnet.data.clips.VideoClips: ``clips`` uint8
    (N, T, H, W, 3), ``frames`` (N, T), ``gt`` (N, 4), ``height``, ``width``) under the `views`
    protocol: the one scoring path of `evaluate` and `predict`. `max_clips` > 0 keeps the
    first clips (all their views)."""
    clips, frames, gt = item["clips"], item["frames"], item["gt"]
    if max_clips:
        clips, frames, gt = clips[:max_clips], frames[:max_clips], gt[:max_clips]
    n = clips.shape[0]
    hs, ws = torch.full((n,), int(item["height"])), torch.full((n,), int(item["width"]))
    boxes = view_boxes(views, hs, ws)
    with torch.no_grad():
        out = score_fn(clips, hs, ws, gt, boxes)
    scores, extras = out if isinstance(out, tuple) else (out, {})
    if scores.dim() != 3 or scores.shape[:2] != boxes.shape[:2]:
        raise ValueError(f"score_fn returned scores of shape {tuple(scores.shape)}, expected ({n}, {boxes.shape[1]}, C)")
    extras = dict(extras)
    spa_box = extras.pop(SPA_BOX, None)
    return VideoScore(scores, boxes, frames, extras, spa_box)


def evaluate_videos(
    score_fn: ScoreFn,
    test_df: pd.DataFrame,
    frames_dir: Path,
    clip_len: int,
    views: str,
    out_dir: Path,
    max_clips: int = 0,
    variant: str = "",
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
    workers: int = 0,
    pin_memory: bool = False,
    coverage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate `test_df`'s videos with `score_fn` under the `views` protocol; write
    metrics.json, predictions.csv, scores.npz and confusion.png into `out_dir`.

    `max_clips` > 0 keeps only each video's first clips (all their views). Videos the
    frame index marks excluded are not evaluated but counted (videos_excluded). `workers`
    DataLoader workers read and decode the videos ahead of the model (in order). `coverage`
    (the split's record from `prepare`, asnet.data.splits.split_coverage) adds the official
    test count (videos_official), so a manifest reduced by allow_missing reads as such."""
    ds = VideoClips(test_df, frames_dir, clip_len, views)
    out_dir = Path(out_dir)
    clip_scores, clip_video, clip_view, clip_start = [], [], [], []
    extras: dict[str, list[Tensor]] = {}
    rows = []
    # batch_size=None: one item (all clips of one video) at a time, in the test list's order.
    videos = DataLoader(ds, batch_size=None, num_workers=workers, pin_memory=pin_memory)
    for i, item in enumerate(tqdm(videos, total=len(ds), desc=f"evaluate {out_dir.name}", disable=not progress)):
        scored = score_video(score_fn, item, views, max_clips)
        n, n_views = scored.scores.shape[:2]
        clip_scores.append(scored.view_scores())
        clip_video.append(np.full(n * n_views, i))
        clip_view.append(scored.view_index())
        clip_start.append(scored.view_starts())
        row = {"video": item["video"], "label": int(item["label"]), "clips": n * n_views}
        for name, vals in scored.extras.items():
            extras.setdefault(name, []).append(vals.float())
            row[name] = float(vals.float().mean())  # per video, for paired tests
        rows.append(row)
        if due(i + 1, len(ds)):
            log.info("evaluate %s: %d of %d videos", out_dir.name, i + 1, len(ds), extra=CONSOLE)
    arrays = {
        "video": np.array(ds.videos, dtype=str),
        "label": np.array(ds.labels, dtype=np.int64),
        "clip_video": np.concatenate(clip_video) if rows else np.zeros(0, dtype=np.int64),
        "clip_scores": np.concatenate(clip_scores).astype(np.float32) if rows else np.zeros((0, 0), np.float32),
        "clip_view": np.concatenate(clip_view) if rows else np.zeros(0, dtype=np.int64),
        "clip_start": np.concatenate(clip_start) if rows else np.zeros(0, dtype=np.int64),
    }
    accuracy, video_scores = score_metrics(arrays["label"], arrays["clip_video"], arrays["clip_scores"])
    labels = arrays["label"]
    pred, correct, correct_k = video_outcomes(video_scores, labels)
    preds = pd.DataFrame(rows, columns=["video", "label", "clips", *extras])
    preds.insert(2, "pred", pred)
    preds.insert(3, "correct", correct.astype(int))
    preds.insert(4, "p_true", video_scores[np.arange(len(labels)), labels] if rows else np.zeros(0))
    preds.insert(5, "correct_top5", correct_k.astype(int))
    out_dir.mkdir(parents=True, exist_ok=True)
    preds.to_csv(out_dir / "predictions.csv", index=False)
    np.savez_compressed(out_dir / "scores.npz", **arrays)
    metrics: dict[str, Any] = {
        "variant": variant,
        "views": views,
        **accuracy,
        "videos": len(rows),  # == videos_evaluated (older readers)
        "videos_listed": ds.n_listed,
        "videos_evaluated": len(rows),
        "videos_excluded": ds.n_excluded,
        "clips": int(len(arrays["clip_video"])),  # views scored: clips x crops
        **_coverage_fields(coverage),
        **(provenance or {}),
    }
    for name, vals in extras.items():
        metrics[name] = float(torch.cat(vals).double().mean())
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    from asnet.report.figures import class_names, confusion_figure

    # Without any evaluated video the figure is empty but exists (a declared rule output).
    confusion_figure(labels, pred, video_scores.shape[1] if rows else 1, class_names(test_df), out_dir / "confusion.png",
                     title=f"{variant} ({views}): top-1 {metrics['top1']:.3f}")
    return metrics


def _coverage_fields(coverage: dict[str, Any] | None) -> dict[str, Any]:
    """metrics.json's official test count and how the manifest was reduced ({} without a record)."""
    if coverage is None:
        return {}
    return {"videos_official": int(coverage["test"]["listed"]), "allow_missing": bool(coverage["allow_missing"]),
            "dataset_synthetic": bool(coverage.get("synthetic", False))}


def _diff_keys(a: Any, b: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff_keys(a.get(k), b.get(k), prefix + (k,))]
    return [] if a == b else [prefix]


def _at(tree: Any, key: tuple) -> Any:
    for k in key:
        tree = tree.get(k) if isinstance(tree, dict) else None
    return tree


def check_run_config(expected: Config, trained: dict[str, Any], dataset: str, model_path: Path) -> None:
    """Refuse to evaluate a run whose trained configuration differs from `expected` (the
    caller's configuration for that run, asnet.stages.run_config) in a key that shapes the run
    (config.run_shaping: the keys of the train rule's digest, its dataset's entry among them):
    the model, its input and SPA are the run's, so such an override would be ignored while the
    results looked like its. ConfigError naming the key, both values and the fix.

    Under Snakemake they agree: a config edit that changes one retrains the run first."""
    old, new = run_shaping(trained), run_shaping(expected.to_dict())
    ds_old = next((d for d in trained.get("datasets", []) if d.get("name") == dataset), None)
    if ds_old is not None:
        old["dataset"] = ds_old
        new["dataset"] = next((d for d in expected.to_dict()["datasets"] if d["name"] == dataset), None)
    diffs = _diff_keys(old, new)
    if not diffs:
        return
    key = diffs[0]
    name = f"datasets[{dataset}]" + "".join(f".{k}" for k in key[1:]) if key[0] == "dataset" else ".".join(key)
    more = f" (and {len(diffs) - 1} more: {', '.join('.'.join(d) for d in diffs[1:4])})" if len(diffs) > 1 else ""
    raise ConfigError(
        f"{name}: the config gives {_at(new, key)!r}, but {model_path} was trained with {_at(old, key)!r}{more}; "
        f"evaluation takes it from the trained run: retrain the run with it (`asnet train` with the same --set, "
        f"or Snakemake, which retrains it), or drop the --set / config edit"
    )


def trained_scorer(
    ck: dict[str, Any],
    device: str | None = None,
    constant_box: tuple[float, float, float] | None = None,
    with_boxes: bool = False,
) -> tuple[Config, Variant, Runtime, ScoreFn]:
    """(config, variant, runtime, ScoreFn) of a loaded `model.pt` dict on `device` (default: the run's),
    in eval mode, SPA's generator seeded with the run's seed: what `evaluate` and `predict`
    score with (``model_scorer``: `constant_box`, `with_boxes`)."""
    cfg, variant, model, agent = rebuild_trained(ck)
    rt = select_runtime(device or cfg.device, cfg.train.amp, cfg.train.channels_last)
    # Before the first CUDA matmul; no autotuning: each batch is one video's clips, a new shape.
    configure_backends(rt, cfg.train.deterministic, benchmark=False)
    model = model.to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    agent = agent.to(rt.device) if agent is not None else None
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    return cfg, variant, rt, model_scorer(model, agent, variant, cfg, rt, gen, constant_box, with_boxes)


def evaluate_run(
    model_path: Path,
    manifest_path: Path,
    frames_dir: Path,
    out_dir: Path,
    threads: int = 0,
    progress: bool = True,
    eval_cfg: EvalConfig | None = None,
    expected: Config | None = None,
    dataset: str | None = None,
    device: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Evaluate `model.pt` on the test subset (see ``evaluate_videos``); `eval_cfg` (views,
    max_clips) defaults to the run's own config's, `device` and `workers` (decoding
    processes) to the run's. With `expected` (the caller's config of the run, for `dataset`)
    a run trained otherwise is refused (``check_run_config``) before any model is built."""
    set_threads(threads)
    ck = checkpoint.load(model_path)
    if expected is not None:
        check_run_config(expected, ck["config"], dataset or "", Path(model_path))
    manifest = pd.read_csv(manifest_path)
    test_df = manifest[manifest["subset"] == "test"].reset_index(drop=True)
    # The ceiling of a pure box prior, fitted on this split's training clips (never the test ones).
    constant = split_constant_box(Path(manifest_path).resolve(), Path(frames_dir).resolve(),
                                  int(ck["config"]["input"]["clip_len"]))
    cfg, variant, rt, scorer = trained_scorer(ck, device, constant)
    ev = eval_cfg or cfg.eval
    # Where the weights came from and how inputs were normalised, next to the accuracy.
    provenance = {"pretrained": ck.get("pretrained"), "normalisation": cfg.normalisation().to_dict()}
    return evaluate_videos(scorer, test_df, frames_dir, cfg.input.clip_len, ev.views, out_dir,
                           max_clips=ev.max_clips, variant=variant.name, progress=progress, provenance=provenance,
                           workers=cfg.train.workers if workers is None else workers,
                           pin_memory=rt.device.type == "cuda",
                           coverage=read_coverage(Path(manifest_path)))
