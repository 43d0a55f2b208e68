"""results/anchor_check: Hara et al.'s published fine-tuned split-1 models, evaluated with their
own classifier through this project's frames, loader, crops, normalisation and test protocol,
beside the numbers Hara et al. report.

A careful reproducer proves the data path on known weights before training anything: if a
published model scores far below its reported accuracy here, the frames, crops, input
normalisation or test protocol are wrong, and no training on them can be trusted. The files
(``resnext-101[-64f]-kinetics-{ucf101,hmdb51}_split1.pth``, their repository's README) are looked
for in ``report.anchor_dir``; a missing file or dataset gives a "not run" row, so the synthetic
default still makes the table.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from asnet import hara, paths
from asnet.config import REPO_ROOT, Config
from asnet.progress import CONSOLE
from asnet.report.tables import write_csv_and_tex

log = logging.getLogger(__name__)

HARA_NUMBERS = REPO_ROOT / "workflow" / "paper" / "hara_numbers.csv"
SIZE = 112  # Hara et al.'s sample_size: the published models' input
CHUNK = 16  # clips per forward: bounds memory on long videos
FLAG = "the data path does not reproduce a known model: fix it before trusting any training"


def reported() -> pd.DataFrame:
    """Hara et al.'s reported numbers for the published fine-tuned files, with provenance."""
    return pd.read_csv(HARA_NUMBERS)


def anchor_runs(cfg: Config) -> list[dict[str, Any]]:
    """One entry per published file: where it is, which configured dataset it is evaluated on,
    the eval dir, and whether it can run ("ready") or why not."""
    configured = {d.name for d in cfg.datasets}
    runs = []
    for r in reported().itertuples(index=False):
        file = Path(cfg.report.anchor_dir) / r.file
        dataset = dict(cfg.report.anchor_datasets).get(r.dataset)
        if dataset not in configured:
            status = f"not run: no {r.dataset} dataset configured (report.anchor_datasets)"
        elif 1 not in cfg.splits:
            status = "not run: split 1 is not configured"
        elif not file.exists():
            status = "not run: file missing"
        else:
            status = "ready"
        runs.append({"file": file, "published_dataset": r.dataset, "dataset": dataset, "status": status,
                     "eval_dir": Path("results") / "anchor" / str(dataset) / Path(r.file).stem})
    return runs


def anchor_inputs(cfg: Config) -> list[Path]:
    """Files the anchor check reads: the present published files and their datasets' split-1
    manifests and frame indexes (so Snakemake extracts the frames first)."""
    out: list[Path] = []
    for run in anchor_runs(cfg):
        if run["status"] == "ready":
            out += [run["file"], paths.manifest(run["dataset"], 1), paths.coverage(run["dataset"], 1),
                    paths.frames_index(run["dataset"])]
    return sorted(set(out))


def published_scorer(net: torch.nn.Module, cfg: Config):
    """asnet.train.evaluate's ScoreFn for a bare published classifier: each view's box cropped
    at Hara's 112 px with the 2018 release's normalisation, softmax of its own classifier."""
    from asnet.data.crops import Frames
    from asnet.device import select_runtime

    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    net = net.to(rt.device)
    if rt.channels_last:
        net = net.to(memory_format=torch.channels_last_3d)

    def score(clips: Tensor, heights: Tensor, widths: Tensor, gt: Tensor, boxes: Tensor) -> tuple[Tensor, dict]:
        chunks = []
        for s in range(0, clips.shape[0], CHUNK):
            # Each chunk of clips crosses to the device once; its views are cropped there.
            frames = Frames.of(clips[s : s + CHUNK], heights[s : s + CHUNK], widths[s : s + CHUNK], rt.device,
                                 rt.crop_method)
            views = []
            for v in range(boxes.shape[1]):
                x = frames.crop(boxes[s : s + CHUNK, v], SIZE, hara.ACTIVITYNET_2018)  # (n, 3, T, 112, 112)
                with rt.autocast():
                    views.append(torch.softmax(net(rt.to_input(x)).float(), dim=1).cpu())
            chunks.append(torch.stack(views, dim=1))
        return torch.cat(chunks), {}  # (N, V, C)

    return score


def evaluate_published(cfg: Config, run: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Evaluate one ready published file on its dataset's split-1 test videos (Hara's protocol)."""
    from asnet.data.splits import read_coverage
    from asnet.models.pretrained import load_published_classifier
    from asnet.train.evaluate import evaluate_videos

    net, published, sha = load_published_classifier(run["file"])
    manifest = pd.read_csv(paths.manifest(run["dataset"], 1))
    classes = int(manifest["label"].max()) + 1
    if classes > published.num_classes:
        raise ValueError(f"{run['file']}: {published.num_classes} classes, but {run['dataset']}'s manifest has {classes}")
    if classes != published.num_classes:
        log.warning("%s has %d classes, %s %d: scores over the file's classes", run["file"], published.num_classes,
                    run["dataset"], classes)
    test_df = manifest[manifest["subset"] == "test"].reset_index(drop=True)
    with torch.no_grad():
        metrics = evaluate_videos(published_scorer(net, cfg), test_df, paths.frames_dir(run["dataset"]),
                                  published.clip_len, "hara", run["eval_dir"], variant=Path(run["file"]).stem,
                                  progress=progress, coverage=read_coverage(paths.manifest(run["dataset"], 1)))
    return {**metrics, "sha256": sha, "clip_len": published.clip_len}


def anchor_frame(cfg: Config, progress: bool = True) -> pd.DataFrame:
    """One row per published file: ours (when run) beside Hara et al.'s reported top-1."""
    numbers = reported().set_index("file")
    rows = []
    runs = anchor_runs(cfg)
    for n, run in enumerate(runs, 1):
        ref = numbers.loc[run["file"].name]
        row: dict[str, Any] = {"file": run["file"].name, "dataset": run["published_dataset"],
                               "evaluated_on": run["dataset"], "frames": int(ref["clip_len"]), "status": run["status"],
                               "top1": float("nan"), "clip_top1": float("nan"), "reported_top1": float(ref["top1"]),
                               "diff": float("nan"), "flag": False, "videos_listed": 0, "videos_evaluated": 0,
                               "videos_excluded": 0, "videos_official": 0, "allow_missing": False, "reported_measure": ref["measure"],
                               "reported_certain": bool(ref["certain"]), "provenance": ref["provenance"], "sha256": ""}
        if run["status"] == "ready":
            log.info("anchor check %d of %d: %s on %s's split-1 test videos", n, len(runs), run["file"].name,
                     run["dataset"], extra=CONSOLE)
            m = evaluate_published(cfg, run, progress)
            diff = 100 * m["top1"] - float(ref["top1"])
            row.update({"status": "evaluated", "top1": 100 * m["top1"], "clip_top1": 100 * m["clip_top1"],
                        "diff": diff, "flag": bool(abs(diff) > cfg.report.anchor_tolerance),
                        "videos_listed": m["videos_listed"], "videos_evaluated": m["videos_evaluated"],
                        "videos_excluded": m["videos_excluded"], "sha256": m["sha256"],
                        # the official split-1 count, not the (possibly reduced) manifest's
                        "videos_official": m.get("videos_official", m["videos_listed"]),
                        "allow_missing": m.get("allow_missing", False)})
        rows.append(row)
    return pd.DataFrame(rows)


def write_anchor_check(cfg: Config, out_tex: Path, progress: bool = True) -> pd.DataFrame:
    """results/anchor_check.{tex,csv}."""
    df = anchor_frame(cfg, progress)
    show = pd.DataFrame({
        "Published model": df["file"].str.replace("_", r"\_", regex=False),
        "Dataset": df["dataset"], "Frames": df["frames"],
        "Ours top-1": df["top1"], "Reported": df["reported_top1"], "Diff": df["diff"],
        "Videos": [f"{e}/{n}" if s == "evaluated" else "--" for e, n, s in
                   zip(df["videos_evaluated"], df["videos_official"], df["status"], strict=True)],
        "Status": [("FLAG: " + FLAG) if f else s for f, s in zip(df["flag"], df["status"], strict=True)],
    })
    tol = cfg.report.anchor_tolerance
    caption = (f"Anchor check: Hara et al.'s published split-1 fine-tuned models with their own classifier, through "
               f"our frames, crops, normalisation (2018 release: [0, 255] minus the ActivityNet mean) and test protocol "
               f"(every non-overlapping clip, the last loop-padded, centre crop, mean of clip softmax), video top-1 (\\%) "
               f"on our split-1 test videos (evaluated/official). Reported: Hara et al.'s 3-split mean, so a split-1 "
               f"number may differ by a point or two; a difference beyond {tol:g} points is flagged.")
    caption += anchor_coverage_note(df) + (f" FLAG: {FLAG}." if df["flag"].any() else "")
    write_csv_and_tex(df, show, out_tex, caption, {"Diff": "{:+.1f}"})
    return df


def anchor_coverage_note(df: pd.DataFrame) -> str:
    """Caption sentence: per evaluated file, "N of M official test videos" when fewer than all."""
    from asnet.data.splits import coverage_phrase

    done = df[(df["status"] == "evaluated") & (df["videos_evaluated"] < df["videos_official"])]
    parts = [f"{r.file.replace('_', chr(92) + '_')}: {coverage_phrase(int(r.videos_evaluated), int(r.videos_official), bool(r.allow_missing))}"
             for r in done.itertuples(index=False)]
    return (" Not the full test set, so not comparable with the reported numbers: " + "; ".join(parts) + ".") if parts else ""


def flag_sentence(csv: Path) -> str:
    """The anchor check's verdict as one sentence ("" when its result file is absent or no file
    was evaluated): the flag itself where any file is off by more than the tolerance."""
    if not Path(csv).exists():
        return ""
    df = pd.read_csv(csv)
    done = df[df["status"] == "evaluated"]
    if done.empty:
        return ""
    if done["flag"].astype(bool).any():
        return f"Anchor check: {FLAG}."
    return "Anchor check: the published models score within tolerance through our data path."


def audit_lines(csv: Path) -> list[str]:
    """The anchor check's verdict for results/audit.md ([] when no file was evaluated)."""
    if not csv.exists():
        return []
    df = pd.read_csv(csv)
    done = df[df["status"].isin(["evaluated"])]
    if done.empty:
        return ["", "## Anchor check", "", "Not run: none of Hara et al.'s published fine-tuned files is present "
                "(`results/anchor_check.csv`); on real data run it first (docs/real-data.md, Pretrained weights)."]
    lines = ["", "## Anchor check", ""]
    for r in done.itertuples(index=False):
        verdict = f"**{FLAG}**" if r.flag else "within tolerance"
        official = int(getattr(r, "videos_official", 0) or r.videos_listed)
        lines.append(f"- {r.file} on {r.evaluated_on}: ours {r.top1:.1f}% vs reported {r.reported_top1:.1f}% "
                     f"({r.diff:+.1f}) on {int(r.videos_evaluated)} of {official} official test videos: {verdict}")
    return lines
