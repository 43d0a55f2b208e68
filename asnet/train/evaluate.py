"""Video-level evaluation (Sec. 4.1.4): all non-overlapping clips, centre crop + SPA crop,
video score = mean of clip softmax scores, top-1 accuracy.

On datasets with ground-truth actor boxes (the synthetic set) it also measures how well
the saliency-stream box covers the actor: mean IoU of SPA's box, of a centre box and of a
random box of SPA's initial size, each against the actor's box over the clip.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from asnet.data.clips import VideoClips
from asnet.data.crops import box_iou
from asnet.device import select_runtime, set_threads
from asnet.train.inputs import clip_to_frame, fixed_saliency_boxes
from asnet.train.loop import Parts, load_trained, stream_inputs


def evaluate_run(
    model_path: Path, manifest_path: Path, frames_dir: Path, out_dir: Path, threads: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Evaluate `model.pt` on the test subset; write predictions.csv and metrics.json."""
    set_threads(threads)
    cfg, variant, model, agent = load_trained(model_path)
    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    model = model.to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    agent = agent.to(rt.device) if agent is not None else None
    parts = Parts(model, None, None, agent, None)  # type: ignore[arg-type]
    manifest = pd.read_csv(manifest_path)
    test_df = manifest[manifest["subset"] == "test"].reset_index(drop=True)
    ds = VideoClips(test_df, frames_dir, cfg.input.clip_len)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows, ious = [], {"spa": [], "center": [], "random": []}
    model.eval()
    with torch.no_grad():
        for i in tqdm(range(len(ds)), desc=f"evaluate {out_dir.name}", disable=not progress):
            item = ds[i]
            clips = item["clips"]  # (N, T, H, W, 3)
            if cfg.eval.max_clips:
                clips = clips[: cfg.eval.max_clips]
            n = clips.shape[0]
            batch = {
                "clip": clips,
                "height": torch.full((n,), int(item["height"])),
                "width": torch.full((n,), int(item["width"])),
                "gt": item["gt"][:n],
                "label": torch.full((n,), int(item["label"])),
            }
            x_ctx, x_sal, episode = stream_inputs(parts, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
            with rt.autocast():
                scores = torch.softmax(model(x_ctx, x_sal).float(), dim=1).mean(0)  # (C,)
            pred = int(scores.argmax())
            label = int(item["label"])
            rows.append(
                {"video": item["video"], "label": label, "pred": pred, "correct": int(pred == label),
                 "p_true": float(scores[label]), "clips": n}
            )
            gt = batch["gt"]
            if not torch.isnan(gt).any():
                hs, ws = batch["height"], batch["width"]
                boxes = {"center": fixed_saliency_boxes("center", cfg, hs, ws, gen),
                         "random": fixed_saliency_boxes("random", cfg, hs, ws, gen)}
                if episode is not None:
                    boxes["spa"] = clip_to_frame(episode.final_boxes, hs, ws)
                for key, box in boxes.items():
                    iou = box_iou(box, gt)  # (n,) one per clip
                    ious[key] += iou.tolist()
                    rows[-1][f"iou_{key}"] = float(iou.mean())  # per video, for paired tests
    preds = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    preds.to_csv(out_dir / "predictions.csv", index=False)
    metrics: dict[str, Any] = {
        "variant": variant.name,
        "top1": float(preds["correct"].mean()) if len(preds) else math.nan,
        "videos": len(preds),
        "clips": int(preds["clips"].sum()) if len(preds) else 0,
    }
    for key, vals in ious.items():
        if vals:
            metrics[f"iou_{key}"] = float(sum(vals) / len(vals))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics
