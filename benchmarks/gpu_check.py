#!/usr/bin/env python
"""A prepared GPU check of the paper-sized training step, within a wall-clock budget; one JSON file.

What it measures (ResNeXt-101 w64 from scratch, 16 x 112 x 112 clips cut from 256 x 340 uint8
frames, batch 32, SPA spa.train_steps = 10: the `paper` preset), each case timed through the
package's own step: `asnet.train.loop.train_step` (`stream_inputs`, `cnn_step`, `ppo_update`,
the loop's sums kept on the device), or, in a package without it, benchmarks/train_step.py's
copy of the loop body with its loss / accuracy syncs:

  single_16f        single-stream step, the package's CUDA defaults (fp16 autocast +
                    GradScaler, channels_last_3d, cudnn.benchmark on: train_run's
                    configure_backends)
  asnet_16f         ASNet step (context crop, SPA episode, saliency crop, two-stream CNN step,
                    PPO update) with the same runtime, and its share spent outside the model
  single_64f        single-stream step at 64 frames (the `paper64` preset), for memory
  single_16f_*      the other seven of {fp16, bf16} x {channels_last on, off} x
                    {cudnn.benchmark on, off} for the single-stream step
  asnet_16f_best    the ASNet step at the fastest single_16f combination, when that differs
                    from the defaults

Per case: step time (median and min of the timed repeats), clips/s, `max_memory_allocated`
of one steady-state step (CUDA; null on the CPU) against `asnet.plan.step_peak_bytes`'s
prediction (null, with the reason, in a package without asnet.plan), and the model FLOP
utilisation (FLOPs per clip from asnet.report.flops.model_cost, the project's own count:
training = 3 forwards per stream + SPA's episode; peak from a table of GPU names, "unknown"
otherwise). Derived: the ASNet / single-stream time ratio against their FLOP ratio, and a
"recommendations" block (the fastest memory format, cudnn.benchmark setting and precision of
the single_16f cases) from which the CUDA defaults can be set.

Share outside the model. The ASNet step is timed whole (`full`), and so is a replica of its
model work alone (`model_only`) on crops made beforehand: the same network calls with the
same shapes and runtime as the episode and the step make (scene feature map, spa.train_steps
+ 1 patch embeddings with their head evaluations and agent forwards, under no_grad in eval
mode; then `cnn_step` on stored x_ctx / x_sal (with the loss / accuracy syncs where the
step timed has them) and `ppo_update` on a stored episode). Outside = (full - model_only) / full: the crops, the
host-device copies, the box arithmetic and every stall the crops' syncs leave on the GPU.
The two are timed interleaved (alternating order) with `torch.cuda.synchronize()` only
before and after each timed step, so the GPU queue inside a step runs as it does in training.
With the benchmarks/train_step.py step, per-phase host-clock times are recorded too
(`phases_s`); the loop's step has no syncs between its phases, so none are taken there.

Budget: `--budget-s` (default 480 s) covers the whole process. Cases run in order of
importance; one whose estimated cost (its FLOPs at the seconds per FLOP measured so far)
does not fit is recorded as skipped, and the JSON file is rewritten after every case, so a
run killed from outside still leaves what it measured.

Inputs are in-memory synthetic uint8 batches shaped like `pad_collate`'s output (pinned on
CUDA, as the training loader's are); nothing reads a file. Every crop is cut in the step
(the paper preset's train.crop_in_workers cuts the context crop in the loader's workers
instead: one of the ASNet step's 2 + spa.train_steps + 2 crops, so the measured share outside
the model is, if anything, a little above a real run's). The imports are those of the
package's training step: torch, numpy, pandas, PyYAML and the wheels of
benchmarks/gpu_wheels.txt.

  python benchmarks/gpu_check.py --out gpu_check.json            # on a GPU machine
  python benchmarks/gpu_check.py --device cpu --smoke --out x.json  # tiny sizes, CPU (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T_START = time.monotonic()  # the budget counts from here: imports and CUDA start-up included

ROOT = Path(__file__).resolve().parents[1]
# The checkout's own package, also where none is installed (a bare CUDA image).
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import train_step as ts  # noqa: E402  (benchmarks/train_step.py: the step, the batches, the FLOPs)

from asnet.config import Config, load_config, with_overrides  # noqa: E402
from asnet.device import Runtime, select_runtime, set_threads  # noqa: E402
from asnet.report.flops import spa_clip_shape  # noqa: E402
from asnet.spa.rollout import Episode, ppo_update  # noqa: E402
from asnet.train import loop as _loop  # noqa: E402
from asnet.train.loop import Parts, build_parts, cnn_step, stream_inputs  # noqa: E402
from asnet.variants import get_variant  # noqa: E402

# The training loop's own step where the package has one (it reads nothing on the host, as the
# loop runs it); else benchmarks/train_step.py's copy of the loop body, with its metric syncs.
LOOP_STEP: Callable[..., Any] | None = getattr(_loop, "train_step", None)
TRAIN_MODE: Callable[..., Any] = getattr(_loop, "train_mode", lambda model, cfg: model.train())

# Dense fp16 / bf16 tensor-core peaks (TFLOP/s, no sparsity), matched in order against
# torch.cuda.get_device_name(): the more specific names first.
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("V100", 125.0),
)
GOALS = {
    "asnet_vs_single_time_over_flop_ratio": 1.1,  # ASNet / single step time within 1.1x of the FLOP ratio
    "asnet_outside_model_share": 0.10,  # at most 10% of an ASNet step outside the model
    "plan_within": 0.15,  # asnet plan's peak within 15% of max_memory_allocated
}
NUM_CLASSES = 101  # UCF-101's, the paper's main set
OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass(frozen=True)
class Case:
    """One measured configuration."""

    name: str
    variant: str  # "single" or "asnet"
    long: bool  # the paper64 clip length instead of paper's
    amp: str  # "fp16" or "bf16"
    channels_last: bool
    cudnn_benchmark: bool

    def key(self) -> tuple[str, bool, str, bool, bool]:
        return (self.variant, self.long, self.amp, self.channels_last, self.cudnn_benchmark)


# What a training run uses on CUDA today: select_runtime's fp16 autocast and channels_last_3d,
# and configure_backends(rt, deterministic=False)'s cudnn.benchmark.
BASE = dict(amp="fp16", channels_last=True, cudnn_benchmark=True)


def planned_cases() -> list[Case]:
    """Cases in the order they run: the ones the goals need first."""
    cases = [
        Case("single_16f", "single", False, **BASE),
        Case("asnet_16f", "asnet", False, **BASE),
        Case("single_64f", "single", True, **BASE),
    ]
    # The rest of the single-stream factorial: one change from the defaults first.
    for amp, cl, bench in (("fp16", True, False), ("fp16", False, True), ("bf16", True, True),
                           ("fp16", False, False), ("bf16", True, False), ("bf16", False, True),
                           ("bf16", False, False)):
        cases.append(Case(factorial_name(amp, cl, bench), "single", False, amp, cl, bench))
    return cases


def factorial_name(amp: str, channels_last: bool, bench: bool) -> str:
    return f"single_16f_{amp}_{'cl' if channels_last else 'ncdhw'}_{'bench' if bench else 'nobench'}"


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Paper-sized training steps on a GPU: step time, peak memory vs asnet plan, share "
        "outside the model, channels_last / cudnn.benchmark / fp16 vs bf16; writes one JSON file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="cuda or cpu")
    p.add_argument("--out", default="gpu_check.json", help="the JSON file written (rewritten after every case)")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole process")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (ResNet-10 w8, 4/8 x 32 x 32 from 40 x 70 frames, batch 2, 2 SPA steps)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default: the preset's, 32)")
    p.add_argument("--frame", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="stored frame size (default 256 340: short side 256 at 4:3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per case (default 2; smoke 1)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per case at most (default 8; smoke 2)")
    p.add_argument("--min-repeats", type=int, default=3, help="timed steps per case at least (budget allowing)")
    p.add_argument("--case-s", type=float, default=40.0, help="stop timing a case after this many seconds")
    p.add_argument("--cases", default=None, help="comma-separated subset of the case names")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any further config override (repeatable)")
    return p.parse_args(argv)


def base_overrides(args: argparse.Namespace, long: bool) -> list[str]:
    """The paper preset (paper64 for the long clips) from scratch (no pretrained file), or its
    tiny stand-in for --smoke; the command line's --batch and --set last."""
    ov = ["preset=paper64" if long else "preset=paper", "model.pretrained=null", "model.pretrained_dir=null",
          f"device={args.device}"]
    if args.smoke:
        ov += ["model.arch=resnet", "model.depth=10", "model.width=8", "input.size=32", "train.batch_size=2",
               f"input.clip_len={8 if long else 4}", "spa.train_steps=2", "spa.init_box=24", "spa.min_side=12",
               "train.threads=1"]
    if args.batch is not None:
        ov.append(f"train.batch_size={args.batch}")
    return ov + list(args.overrides)


class Budget:
    """Seconds left of the process's budget, with a reserve kept for writing the results."""

    def __init__(self, total_s: float, reserve_s: float) -> None:
        self.total_s, self.reserve_s = total_s, reserve_s

    def elapsed(self) -> float:
        return time.monotonic() - T_START

    def left(self) -> float:
        return self.total_s - self.reserve_s - self.elapsed()


class Checker:
    """Builds each case's config, parts and batch, times it and collects the JSON document."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise SystemExit("--device cuda: CUDA is not available (use --device cpu --smoke on a CPU)")
        self.budget = Budget(args.budget_s, reserve_s=5.0 if args.smoke else 15.0)
        self.warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 2)
        self.repeats = args.repeats if args.repeats is not None else (2 if args.smoke else 8)
        self.min_repeats = min(args.min_repeats, self.repeats) if not args.smoke else 1
        self.frame = tuple(args.frame) if args.frame else ((40, 70) if args.smoke else (256, 340))
        base = base_overrides(args, long=False)
        self.cfg16 = load_config(None, base)
        self.cfg64 = load_config(None, base_overrides(args, long=True))
        self.configs: dict[tuple, Config] = {}
        self.threads = set_threads(self.cfg16.train.threads)
        if self.cuda:  # the context, cuBLAS and cuDNN start here, not in the first case's warm-up
            conv = torch.nn.Conv3d(3, 8, 3).to(self.device)
            with torch.autocast("cuda", dtype=torch.float16):
                conv(torch.randn(1, 3, 4, 8, 8, device=self.device)).float().sum().backward()
            torch.cuda.synchronize(self.device)
        self.batches: dict[bool, dict[str, Any]] = {}
        self.plan_cache: dict[tuple, dict[str, Any]] = {}
        self.extra_cases: list[Case] = []  # asnet_16f_best, when it runs
        self.flops: dict[tuple[int, int], dict[str, float]] = {}
        self.sec_per_gflop: float | None = None  # step seconds per GFLOP measured so far
        self.warm_s_per_gflop = 0.0  # warm-up seconds (cuDNN autotuning included) per step GFLOP
        self.build_s = 0.0  # the last build_parts' time
        self.doc: dict[str, Any] = {"environment": environment(self.device), "settings": {}, "cases": {},
                                    "skipped": {}, "derived": {}, "recommendations": None, "goals": GOALS}
        self.doc["settings"] = {
            "smoke": args.smoke, "budget_s": args.budget_s, "warmup": self.warmup, "repeats": self.repeats,
            "min_repeats": self.min_repeats, "case_s": args.case_s, "frame": list(self.frame),
            "num_classes": NUM_CLASSES, "threads": self.threads, "overrides": base,
            "model": f"{self.cfg16.model.arch}-{self.cfg16.model.depth} w{self.cfg16.model.width}",
            "clip_len": {"16f": self.cfg16.input.clip_len, "64f": self.cfg64.input.clip_len},
            "size": self.cfg16.input.size, "batch": self.cfg16.train.batch_size,
            "spa_train_steps": self.cfg16.spa.train_steps,
        }

    # -- pieces ---------------------------------------------------------------------------

    def config(self, case: Case) -> Config:
        """The case's config: its clip length, precision and memory format (what asnet plan reads)."""
        key = (case.long, case.amp, case.channels_last)
        if key not in self.configs:
            self.configs[key] = with_overrides(self.cfg64 if case.long else self.cfg16,
                                               {"train.amp": case.amp, "train.channels_last": case.channels_last})
        return self.configs[key]

    def runtime(self, case: Case) -> Runtime:
        return select_runtime(self.device.type, case.amp, case.channels_last)

    def batch(self, cfg: Config, long: bool) -> dict[str, Any]:
        if long not in self.batches:
            self.batches.clear()  # one clip length at a time in host memory
            h, w = self.frame
            batch = ts.synthetic_batch(cfg.train.batch_size, cfg.input.clip_len, h, w, NUM_CLASSES)
            if self.cuda:  # the training loader pins its batches on CUDA (asynchronous copies)
                batch = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            self.batches[long] = batch
        return self.batches[long]

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def gflop_per_step(self, cfg: Config, variant: str) -> float:
        key = (cfg.input.clip_len, cfg.train.batch_size)  # precision and memory format change no FLOP
        if key not in self.flops:
            self.flops[key] = ts.flops_per_clip(cfg, NUM_CLASSES)
        flops = self.flops[key]
        return flops["train_asnet" if variant == "asnet" else "train_single"] * cfg.train.batch_size / 1e9

    def estimate_s(self, cfg: Config, case: Case) -> float:
        """Seconds the case needs at least: a build plus its warm-up and minimum timed steps."""
        if self.sec_per_gflop is None:
            return 0.0
        gflop = self.gflop_per_step(cfg, case.variant)
        step = self.sec_per_gflop * gflop
        per_repeat = step * (2 if case.variant == "asnet" else 1)  # the model-only replica too
        warm = max(self.warmup * step, self.warm_s_per_gflop * gflop)
        return self.build_s + warm + (1 + self.min_repeats) * per_repeat

    def plan(self, cfg: Config, case: Case) -> dict[str, Any]:
        """`asnet plan`'s predicted peak bytes of one step, or null with the reason."""
        key = (case.variant, case.long, case.amp, case.channels_last)
        if key in self.plan_cache:
            return self.plan_cache[key]
        try:
            from asnet.plan import step_peak_bytes
        except ImportError as exc:
            out = {"plan_prediction": None, "plan_reason": f"asnet.plan.step_peak_bytes not importable: {exc}"}
        else:
            t0 = time.monotonic()
            try:
                pred = int(step_peak_bytes(cfg, case.variant, NUM_CLASSES, cfg.train.batch_size))
                out = {"plan_prediction": pred, "plan_reason": None}
            except Exception as exc:  # a failing prediction is a result to report, not a reason to stop
                out = {"plan_prediction": None, "plan_reason": f"step_peak_bytes raised {type(exc).__name__}: {exc}"}
            out["plan_s"] = time.monotonic() - t0
        self.plan_cache[key] = out
        return out

    # -- one case -------------------------------------------------------------------------

    def run_case(self, case: Case) -> dict[str, Any]:
        cfg = self.config(case)
        rt = self.runtime(case)
        variant = get_variant(case.variant)
        batch = self.batch(cfg, case.long)
        if self.cuda:
            torch.backends.cudnn.benchmark = case.cudnn_benchmark
            torch.cuda.empty_cache()
        t0 = time.monotonic()
        parts = build_parts(cfg, variant, NUM_CLASSES, rt)
        freeze_learning_rates(parts)
        self.sync()
        self.build_s = time.monotonic() - t0
        gen = torch.Generator().manual_seed(cfg.seed * 100_003)
        counter = [0]
        phases: dict[str, float] = {}

        def full() -> None:
            if LOOP_STEP is not None:
                LOOP_STEP(parts, parts.model, parts.agent, cfg.spa, variant, cfg, rt, batch, gen,
                          update_spa=counter[0] % cfg.spa.update_every == 0)
            else:
                ts.train_step(parts, variant, cfg, rt, batch, gen, counter[0], phases)
            counter[0] += 1

        TRAIN_MODE(parts.model, cfg)  # as the loop sets it once per epoch

        row: dict[str, Any] = {
            "config": {"variant": case.variant, "clip_len": cfg.input.clip_len, "size": cfg.input.size,
                       "batch": cfg.train.batch_size, "amp": case.amp, "channels_last": case.channels_last,
                       "cudnn_benchmark": case.cudnn_benchmark, "amp_dtype": str(rt.amp_dtype),
                       "grad_scaler": parts.scaler is not None},
            "build_s": self.build_s,
            "step": "asnet.train.loop.train_step" if LOOP_STEP is not None else "benchmarks/train_step.py:train_step",
        }
        static = torch.cuda.memory_allocated(self.device) if self.cuda else None
        t0 = time.monotonic()
        for _ in range(self.warmup):
            self.sync()
            full()
        self.sync()
        row["warmup_s"] = time.monotonic() - t0
        # Peak of one steady-state step: weights, optimizer state, gradients, activations and
        # cuDNN workspaces (the caching allocator's count; the warm-up built momentum buffers).
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        row["times_s"] = [self.timed(full)]
        row["max_memory_allocated"] = torch.cuda.max_memory_allocated(self.device) if self.cuda else None
        row["memory_allocated_after_build"] = static  # weights only: no gradients or optimizer state yet
        row["phases_s"] = [dict(phases)] if phases else []

        replica = self.model_only(parts, variant, cfg, rt, batch, gen) if case.variant == "asnet" else None
        if replica is not None:
            replica()  # its own warm-up: the no-grad shapes may pick other kernels
            row["model_only_times_s"] = []
        t_case = time.monotonic()
        while len(row["times_s"]) < self.repeats:
            if len(row["times_s"]) >= self.min_repeats and (time.monotonic() - t_case > self.args.case_s):
                break
            if self.budget.left() < 0 and len(row["times_s"]) >= 1:
                row["stopped_early"] = "budget"
                break
            # Alternate which goes first, so that drift (clocks, a shared host) hits both alike.
            order = [full, replica] if len(row["times_s"]) % 2 else [replica, full]
            for fn in order:
                if fn is None:
                    continue
                dt = self.timed(fn)
                if fn is full:
                    row["times_s"].append(dt)
                    if phases:
                        row["phases_s"].append(dict(phases))
                else:
                    row["model_only_times_s"].append(dt)
        if replica is not None and not row["model_only_times_s"]:
            row["model_only_times_s"].append(self.timed(replica))

        times = row["times_s"]
        med = statistics.median(times)
        b = cfg.train.batch_size
        gflop = self.gflop_per_step(cfg, case.variant)
        row.update(median_s=med, min_s=min(times), clips_per_s=b / med, gflop_per_step=gflop,
                   achieved_tflops=gflop / med / 1e3)
        peak = self.doc["environment"]["peak_tflops"]
        row["mfu"] = (gflop / med / 1e3) / peak if isinstance(peak, (int, float)) else None
        if row["phases_s"]:
            row["phases_median_s"] = {k: statistics.median(p[k] for p in row["phases_s"]) for k in row["phases_s"][0]}
        if replica is not None:
            mo = statistics.median(row["model_only_times_s"])
            row["model_only_median_s"] = mo
            row["outside_model_s"] = med - mo
            row["outside_model_share"] = max(0.0, med - mo) / med
        # The slowest step rate seen, so that estimates do not run over the budget; the last
        # warm-up's (cuDNN autotunes anew for each precision and memory format).
        self.sec_per_gflop = max(self.sec_per_gflop or 0.0, med / gflop)
        self.warm_s_per_gflop = row["warmup_s"] / gflop

        # parts and the closures holding them go with this frame; try_case then empties the cache.
        # asnet plan's prediction comes after all measurements (see add_plans): it is CPU work.
        row.update(plan_prediction=None, plan_reason="not run: budget spent", plan_ratio=None)
        return row

    def timed(self, fn: Callable[[], None]) -> float:
        """Wall time of one step, the device queue drained before and after (and never inside)."""
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t0

    def model_only(self, parts: Parts, variant: Any, cfg: Config, rt: Runtime, batch: dict[str, Any],
                   gen: torch.Generator) -> Callable[[], None]:
        """The ASNet step's network work alone, on inputs made once here (see the module docstring)."""
        assert parts.agent is not None and parts.agent_optimizer is not None
        TRAIN_MODE(parts.model, cfg)
        x_ctx, x_sal, episode = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, True, gen,
                                              cfg.spa.train_steps)
        assert x_sal is not None and episode is not None
        labels = batch["label"].to(rt.device)
        t_spa, s_spa = spa_clip_shape(cfg)
        x_spa = x_ctx if (t_spa, s_spa) == (cfg.input.clip_len, cfg.input.size) else rt.to_input(
            torch.randn(x_ctx.shape[0], 3, t_spa, s_spa, s_spa))
        model, agent, steps = parts.model, parts.agent, cfg.spa.train_steps
        state_len = agent.trunk[0].in_features

        @torch.no_grad()
        def spa_forwards() -> None:
            # What run_episode asks of the networks: the scene's feature map once, the initial
            # box's and then every step's patch embedding with the head's logits, one agent
            # forward per step.
            model.eval()
            with rt.autocast():
                fmap = model.backbone.feature_map(x_spa).float()
            s_g = F.adaptive_avg_pool3d(fmap, 1).flatten(1)
            for k in range(steps + 1):
                with rt.autocast():
                    s_p = model.features(x_spa).float()
                s_l = model.head(s_g, s_p).float()
                if k < steps:
                    state = torch.cat([s_g, s_p, s_l], dim=1)
                    if state.shape[1] != state_len:  # spa.state=spatial: its extra cells cost nothing here
                        state = F.pad(state, (0, state_len - state.shape[1]))
                    agent.act(state, False)
            TRAIN_MODE(model, cfg)

        def step() -> None:
            spa_forwards()
            loss, logits = cnn_step(parts, model, rt, x_ctx, x_sal, labels)
            if LOOP_STEP is None:  # the syncs benchmarks/train_step.py makes after the CNN step
                loss.item()
                float((logits.argmax(1) == labels).sum())
            ppo_update(agent, parts.agent_optimizer, _episode_copy(episode), cfg.spa, gen)

        return step

    # -- the run --------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        wanted = set(self.args.cases.split(",")) if self.args.cases else None
        cases = [c for c in planned_cases() if wanted is None or c.name in wanted]
        for case in cases:
            self.try_case(case)
        best = self.recommend()
        if best is not None and (wanted is None or "asnet_16f_best" in wanted):
            b = Case("asnet_16f_best", "asnet", False, best["amp"], best["channels_last"], best["cudnn_benchmark"])
            if b.key() != Case("", "asnet", False, **BASE).key():
                self.extra_cases.append(b)
                self.try_case(b)
            else:
                self.doc["skipped"]["asnet_16f_best"] = "the fastest single_16f combination is the default: asnet_16f"
        self.add_plans(cases)
        self.derive()
        self.doc["elapsed_s"] = self.budget.elapsed()
        self.write()
        return self.doc

    def add_plans(self, cases: list[Case]) -> None:
        """asnet plan's prediction for every measured case, in the cases' order, while the
        budget lasts (a call costs about what the slowest one so far did; bf16 / fp16 and the
        memory formats share nothing, so each key is its own call)."""
        slowest = 0.0
        for case in cases + [c for c in self.extra_cases]:
            row = self.doc["cases"].get(case.name)
            if row is None or "error" in row:
                continue
            key = (case.variant, case.long, case.amp, case.channels_last)
            if key not in self.plan_cache and self.budget.left() < slowest:
                continue
            plan = self.plan(self.config(case), case)
            slowest = max(slowest, plan.get("plan_s", 0.0))
            meas, pred = row["max_memory_allocated"], plan["plan_prediction"]
            row.update(plan, plan_ratio=pred / meas if pred and meas else None)
            self.write()

    def try_case(self, case: Case) -> None:
        if self.device.type == "cpu" and case.amp == "bf16" and case.channels_last:
            # torch 2.13's bf16 backward of channels_last_3d convolutions corrupts the heap on
            # AVX512-BF16 CPUs (asnet/device.py); the combination is a CUDA question anyway.
            self.doc["skipped"][case.name] = "cpu: bf16 with channels_last_3d (heap corruption in torch's CPU kernels)"
            self.write()
            return
        cfg = self.config(case)
        need, left = self.estimate_s(cfg, case), self.budget.left()
        if left <= 0 or need > left:
            self.doc["skipped"][case.name] = f"budget: needs ~{need:.0f} s, {max(left, 0):.0f} s left"
            self.write()
            return
        print(f"[{self.budget.elapsed():6.1f} s] {case.name} ...", flush=True)
        try:
            row = self.run_case(case)
        except OOM as exc:
            row = {"config": dataclasses.asdict(case), "error": f"out of memory: {str(exc)[:400]}",
                   "max_memory_allocated": torch.cuda.max_memory_allocated(self.device) if self.cuda else None}
        except Exception as exc:  # one broken case must not lose the others' numbers
            row = {"config": dataclasses.asdict(case), "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-3000:]}
        if self.cuda:
            torch.cuda.empty_cache()
        self.doc["cases"][case.name] = row
        if "error" in row:
            print(f"    error: {row['error'][:300]}", flush=True)
        else:
            extra = f", outside model {100 * row['outside_model_share']:.1f}%" if "outside_model_share" in row else ""
            mem = row["max_memory_allocated"]
            print(f"    median {row['median_s']:.4f} s, {row['clips_per_s']:.1f} clips/s"
                  + (f", peak {mem / 2**30:.2f} GiB" if mem else "")
                  + (f", MFU {100 * row['mfu']:.1f}%" if row["mfu"] is not None else "") + extra, flush=True)
        self.write()

    def ok(self, name: str) -> dict[str, Any] | None:
        row = self.doc["cases"].get(name)
        return row if row is not None and "error" not in row else None

    def recommend(self) -> dict[str, Any] | None:
        """The fastest single_16f combination, and per setting the best time with each value."""
        rows = {n: r for n, r in self.doc["cases"].items() if n.startswith("single_16f") and "error" not in r}
        if not rows:
            return None
        name = min(rows, key=lambda n: rows[n]["median_s"])
        fastest = rows[name]["config"]
        per_axis: dict[str, Any] = {}
        for axis in ("amp", "channels_last", "cudnn_benchmark"):
            best_by_value: dict[str, float] = {}
            for r in rows.values():
                v = str(r["config"][axis])
                best_by_value[v] = min(best_by_value.get(v, math.inf), r["median_s"])
            per_axis[axis] = {"best_median_s_by_value": best_by_value}
        base = rows.get("single_16f")
        rec = {
            "basis": "median step time of the single_16f cases (same model, batch and clips)",
            "fastest_case": name, "amp": fastest["amp"], "channels_last": fastest["channels_last"],
            "cudnn_benchmark": fastest["cudnn_benchmark"], "per_setting": per_axis,
            "cases_compared": sorted(rows),
            "speedup_over_defaults": base["median_s"] / rows[name]["median_s"] if base else None,
        }
        self.doc["recommendations"] = rec
        return rec

    def derive(self) -> None:
        d = self.doc["derived"]
        single, asnet = self.ok("single_16f"), self.ok("asnet_16f")
        if single and asnet:
            t_ratio = asnet["median_s"] / single["median_s"]
            f_ratio = asnet["gflop_per_step"] / single["gflop_per_step"]
            d["asnet_vs_single"] = {
                "time_ratio": t_ratio, "flop_ratio": f_ratio, "time_over_flop_ratio": t_ratio / f_ratio,
                "goal": GOALS["asnet_vs_single_time_over_flop_ratio"],
                "met": t_ratio / f_ratio <= GOALS["asnet_vs_single_time_over_flop_ratio"],
            }
        for name in ("asnet_16f", "asnet_16f_best"):
            row = self.ok(name)
            if row and "outside_model_share" in row:
                d[f"{name}_outside_model"] = {"share": row["outside_model_share"],
                                              "goal": GOALS["asnet_outside_model_share"],
                                              "met": row["outside_model_share"] <= GOALS["asnet_outside_model_share"]}
        d["plan_vs_measured"] = {
            n: {"predicted": r.get("plan_prediction"), "measured": r.get("max_memory_allocated"),
                "ratio": r.get("plan_ratio"),
                "met": (abs(r["plan_ratio"] - 1) <= GOALS["plan_within"]) if r.get("plan_ratio") else None,
                "reason": r.get("plan_reason")}
            for n, r in self.doc["cases"].items() if "error" not in r
        }
        d["mfu"] = {n: r.get("mfu") for n, r in self.doc["cases"].items() if "error" not in r}

    def write(self) -> None:
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str))
        os.replace(tmp, out)  # a run killed mid-write keeps the previous complete file


def freeze_learning_rates(parts: Parts) -> None:
    """Learning rates 0: the optimizers run the same kernels (SGD's and AdamW's updates are
    computed and applied with a zero step), but random weights trained over and over on one
    random batch would drift until SPA's eval-mode forwards overflow (NaN Beta parameters)."""
    for opt in (parts.optimizer, parts.agent_optimizer):
        for group in opt.param_groups if opt is not None else ():
            group["lr"] = 0.0


def _episode_copy(ep: Episode) -> Episode:
    """ppo_update only reads the episode; a shallow copy keeps the stored one untouched all the same."""
    return dataclasses.replace(ep)


def environment(device: torch.device) -> dict[str, Any]:
    """Versions, the device and its fp16/bf16 peak (or "unknown")."""
    env: dict[str, Any] = {
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "host_cpus": os.cpu_count(), "device_type": device.type,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_TFLOPS if k in name), None)
        env.update(device_name=name, capability=f"{props.major}.{props.minor}",
                   total_memory=props.total_memory, multiprocessors=props.multi_processor_count,
                   peak_tflops=peak if peak is not None else "unknown",
                   peak_tflops_basis="dense fp16/bf16 tensor-core peak of the GPU's datasheet")
    else:
        env.update(device_name=platform.processor() or platform.machine(), peak_tflops="unknown",
                   peak_tflops_basis="no table for CPUs")
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checker = Checker(args)
    doc = checker.run()
    print(f"wrote {args.out} ({len(doc['cases'])} cases, {len(doc['skipped'])} skipped, "
          f"{doc['elapsed_s']:.0f} s)")
    for k, v in doc["derived"].items():
        if k not in ("plan_vs_measured", "mfu"):
            print(f"  {k}: {json.dumps(v)}")
    if doc["recommendations"]:
        r = doc["recommendations"]
        print(f"  recommendations: amp {r['amp']}, channels_last {r['channels_last']}, "
              f"cudnn.benchmark {r['cudnn_benchmark']} (fastest: {r['fastest_case']})")
    return 0 if all("error" not in r for r in doc["cases"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
