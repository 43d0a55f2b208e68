"""The plan table: one row per distinct (job kind, dataset, variant) of a target, with its
job count (its splits), the measured fake-step peak, FLOPs, steps and GPU hours, and which
memory classes it fits (results/plan.csv; `asnet plan`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from asnet.config import Config
from asnet.plan import jobs
from asnet.plan.gpus import DEFAULT_GPU, GPU_CLASSES, MEMORY_CLASSES_GIB, GPUClass, get_gpu
from asnet.plan.step import (
    GIB,
    eval_peak_bytes,
    measure_steps,
    plan_device,
    precision,
    smallest_split,
    train_peak_bytes,
)
from asnet.report.flops import model_cost


def _fits(cfg: Config, variant: str, classes: int, peak: int, device: str, train: bool) -> dict[str, str]:
    """Per memory class: "ok" (fits as configured), "xK" (fits with nproc_per_node x
    accum_steps = K, training only) or "no"."""
    out = {}
    for gib in MEMORY_CLASSES_GIB:
        limit = gib * GIB
        if peak <= limit:
            out[f"fit_{gib}g"] = "ok"
        elif not train:
            out[f"fit_{gib}g"] = "no"
        else:
            fit = smallest_split(cfg, variant, classes, limit, device)
            out[f"fit_{gib}g"] = f"x{fit[0]}" if fit else "no"
    return out


def _rows(cfg: Config, target: str, gpu: GPUClass) -> list[dict[str, Any]]:
    from asnet import stages
    from asnet.seeds import run_seeds
    from asnet.variants import get_variant

    device = plan_device(cfg)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    runs = [(d, s, v) for d, s, v in jobs.target_runs(cfg, target)]
    pre = cfg.pretrain is not None and any(stages.fine_tunes_from_pretrain(stages.run_config(cfg, v))
                                           for _, _, v in runs)
    plan_runs = [("pretrain", cfg.pretrain.dataset.name, None, "single")] if pre else []
    # Table 2's other backbones' pretraining runs, as the single stream of their backbone
    backbones = dict.fromkeys(b for _, _, v in runs if (b := stages.fine_tuned_backbone(cfg, v)))
    plan_runs += [("pretrain", cfg.pretrain.dataset.name, None, f"{b}_single") for b in backbones]
    # every replicate seed (`seeds:`) trains and evaluates each run again; pretraining runs once
    plan_runs += [("run", d, s, v) for d, s, v in runs for _ in run_seeds(cfg)]
    for origin, dataset, split, variant in plan_runs:
        if origin == "pretrain":
            rc = stages.pretrain_config(cfg, get_variant(variant).backbone)
        else:
            rc = stages.run_config(cfg, variant)
        kinds = ("train",) if origin == "pretrain" else ("train", "evaluate")
        for kind in kinds:
            key = (kind if origin == "run" else "pretrain", dataset, variant)
            if key in groups:
                groups[key]["jobs"] += 1
                continue
            groups[key] = {"cfg": rc, "split": split, "jobs": 1}
    rows = []
    for (kind, dataset, variant), g in groups.items():
        rc, size = g["cfg"], jobs.data_size(g["cfg"], dataset, g["split"])
        prec = precision(rc, device)
        cost = model_cost(rc, size.classes, variant)
        rate = gpu.tflops(prec) * 1e12
        row: dict[str, Any] = {"job": kind, "dataset": dataset, "variant": variant, "jobs": g["jobs"],
                               "clip": f"{rc.input.clip_len}x{rc.input.size}", "precision": prec}
        if kind in ("train", "pretrain"):
            b, accum = rc.train.batch_size, rc.train.accum_steps
            per_proc = b // rc.train.nproc_per_node
            peak = train_peak_bytes(rc, variant, size.classes, per_proc // accum, device, accum_steps=accum)
            steps, val = jobs.steps_per_epoch(rc, size)
            flops_step = b * cost["gflops_train_step"] * 1e9
            flops_job = rc.train.epochs * (steps * flops_step + val * cost["gflops_per_view"] * 1e9)
            row.update(batch=b, peak_gib=peak / GIB, gflop_step=flops_step / 1e9, steps_epoch=steps,
                       epochs=rc.train.epochs)
            row.update(_fits(rc, variant, size.classes, peak, device, train=True))
        else:
            views = jobs.eval_views(rc, size.mean_frames)
            peak = eval_peak_bytes(rc, variant, size.classes, views, device)
            flops_step = views * cost["gflops_per_view"] * 1e9
            flops_job = size.test * flops_step
            row.update(batch=views, peak_gib=peak / GIB, gflop_step=flops_step / 1e9, steps_epoch=size.test, epochs=1)
            row.update(_fits(rc, variant, size.classes, peak, device, train=False))
        row.update(gpu=gpu.name, tflops=gpu.tflops(prec), tflops_source="assumed",
                   gpu_h_job=flops_job / rate / 3600, gpu_h=g["jobs"] * flops_job / rate / 3600,
                   data=size.source, _flops_job=flops_job, _cfg=rc, _classes=size.classes)
        rows.append(row)
    return rows


def _measure(rows: list[dict[str, Any]], steps: int) -> None:
    """Time `steps` real training steps of each distinct training case on this machine's
    device, and put the achieved TFLOP/s in place of the assumption (evaluation rows take
    their training case's rate; the measured peak is added)."""
    measured: dict[tuple[str, str], float] = {}
    for row in rows:
        if row["job"] == "evaluate":
            continue
        rc, b = row["_cfg"], row["batch"]
        m = measure_steps(rc, row["variant"], row["_classes"], b, steps=steps)
        rate = row["gflop_step"] * 1e9 / m["s_per_step"]
        measured[(row["dataset"], row["variant"])] = rate
        row.update(measured_s_step=m["s_per_step"], measured_peak_gib=m["peak_bytes"] / GIB,
                   measured_on=m["device"])
        _set_rate(row, rate)
    for row in rows:
        rate = measured.get((row["dataset"], row["variant"]))
        if row["job"] == "evaluate" and rate:
            _set_rate(row, rate)


def _set_rate(row: dict[str, Any], rate: float) -> None:
    row.update(tflops=rate / 1e12, tflops_source="measured", gpu="this device",
               gpu_h_job=row["_flops_job"] / rate / 3600, gpu_h=row["jobs"] * row["_flops_job"] / rate / 3600)


NOTES = (
    "peak_gib: the measured peak of one step of the training loop (asnet.train.loop.train_step) on fake tensors "
    "(asnet.plan.step; the 2nd of two steps: weights, gradients, optimizer state, the clip batch and its crops, "
    "SPA's episode, saved activations, PPO update); not included: the CUDA context (~0.3-0.5 GiB), cuDNN "
    "workspace, allocator fragmentation.",
    "fit_<N>g: ok = fits in N GiB as configured; xK = fits with train.accum_steps = K (measured; "
    "train.nproc_per_node = K, one GPU each, needs no more); no = not even one clip fits. Evaluation batches "
    "are one video's clips (a mean-length video until the frames are extracted).",
    "gflop_step: torch's FLOPs (2 per multiply-add) per optimizer step (training: 3x forward per stream plus "
    "SPA's episode, asnet.report.flops.model_cost) or per test video (evaluation); gpu_h adds each epoch's "
    "validation forwards.",
)


def plan(cfg: Config, target: str = "table6", gpu: str = DEFAULT_GPU, measure: bool = False,
         measure_steps_n: int = 20, out_csv: Path | None = None) -> pd.DataFrame:
    """The plan of `target`'s jobs under `cfg` for GPU class `gpu` (its assumed TFLOP/s, or
    with `measure` the rate of real steps timed on this machine's device); written to
    `out_csv` when given. The DataFrame's attrs["notes"] say what the columns assume."""
    g = get_gpu(gpu)
    rows = _rows(cfg, target, g)
    if measure:
        _measure(rows, measure_steps_n)
    df = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    df["peak_gib"] = df["peak_gib"].map(lambda x: float(f"{x:.3g}"))
    df["gflop_step"] = df["gflop_step"].round(1)
    for col in ("gpu_h_job", "gpu_h", "tflops"):
        df[col] = df[col].map(lambda x: float(f"{x:.3g}"))
    if out_csv is not None:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out_csv, index=False)
    rates = ", ".join(f"{c.name} {c.tflops_fp16:g}/{c.tflops_fp32:g}" for c in GPU_CLASSES.values())
    total = df["gpu_h"].sum()
    df.attrs["notes"] = [
        f"preset {cfg.preset}, target {target}: {int(df['jobs'].sum())} jobs, {total:.3g} GPU-hours on "
        + (f"{g.name} at an assumed {g.tflops_fp16:g} TFLOP/s (fp16 AMP) / {g.tflops_fp32:g} (fp32) achieved"
           if not measure else "this device at the measured rate"),
        f"assumed achieved TFLOP/s (fp16/fp32) per class: {rates} (asnet/plan/gpus.py; `--measure` replaces them)",
        *NOTES,
    ]
    return df


def show(df: pd.DataFrame) -> str:
    """The plan as printed by `asnet plan`: the table, then what it assumes."""
    cols = [c for c in df.columns if c not in ("data", "gpu")]
    return df[cols].to_string(index=False) + "\n" + "\n".join(f"# {n}" for n in df.attrs.get("notes", []))
