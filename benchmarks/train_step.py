#!/usr/bin/env python
"""Throughput of the training step and of video-level inference: single stream vs ASNet.

Everything timed goes through the package's own code: `build_parts` builds model, SPA
agent and optimizers; `stream_inputs` makes the crops and plays the SPA episode; the CNN
step is the body of `train_run`'s inner loop (forward, cross-entropy, zero_grad,
backward, optimizer step, the `.item()` / accuracy syncs) followed by `ppo_update`.
Inference is the body of `evaluate_run`'s loop (stream inputs with `spa.test_steps`,
forward, softmax mean over the clips of a video).

Cases (per iteration, one batch of B clips):

  train_plain   single-stream training step, plain fp32 eager (no channels_last, no AMP)
  train_single  single-stream training step with the runtime `select_runtime` picks
  train_asnet   ASNet training step: context crop + SPA episode (spa.train_steps rollouts,
                CNN fixed) + saliency crop + two-stream CNN step + PPO update
  infer_single  video-level inference, single stream (centre crop)
  infer_asnet   video-level inference, ASNet (centre crop + SPA, spa.test_steps steps)

Inputs are synthetic uint8 batches of the shape the loader produces: (B, T, H, W, 3) at
the stored frame size (e.g. 64x112 for the default preset, 256x340 for the paper's).
After warm-up the cases are run in interleaved, rotated order `--repeats` times; medians
and the ratios of medians are reported (the machine may be shared: compare within a run).

Example (default preset: ResNet-10 w16, 8x48x48 from 64x112 frames, batch 16):

  python benchmarks/train_step.py --preset default --batch 16 --repeats 7
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from asnet.config import Config, load_config
from asnet.device import Runtime, select_runtime, set_threads
from asnet.report.flops import count_flops, model_cost
from asnet.spa.rollout import ppo_update
from asnet.train.loop import Parts, build_parts, cnn_step, stream_inputs
from asnet.variants import Variant, get_variant

CASES = ("train_plain", "train_single", "train_asnet", "infer_single", "infer_asnet")
# First run of each case in this order, so that the cumulative peak RSS grows case by case.
MEMORY_ORDER = ("infer_single", "train_plain", "train_single", "infer_asnet", "train_asnet")
GOALS = {  # from the performance issue
    "single_vs_plain": 1.8,  # our single-stream step at least 1.8x faster than plain fp32
    "asnet_vs_single_train": 3.0,  # ASNet step at most 3x the single-stream step
    "asnet_vs_single_infer": 2.5,  # ASNet inference at most 2.5x single-stream inference
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="clips/s of the single-stream and ASNet training steps and video-level inference "
        "(synthetic uint8 batches, the package's own step code); prints medians and ratios.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", default="default", help="config preset (config/presets/NAME.yaml)")
    p.add_argument("--arch", default=None, help="model.arch (default: the preset's)")
    p.add_argument("--depth", type=int, default=None, help="model.depth (default: the preset's)")
    p.add_argument("--width", type=int, default=None, help="model.width (default: the preset's)")
    p.add_argument("--clip-len", type=int, default=None, help="input.clip_len T (default: the preset's)")
    p.add_argument("--size", type=int, default=None, help="input.size S of the network input (default: the preset's)")
    p.add_argument("--batch", type=int, default=None, help="clips per batch (default: the preset's train.batch_size)")
    p.add_argument("--frame", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="stored frame size; default: short side frames.short_side, aspect 1.75 "
                   "(64x112 for default, 256x448 for paper)")
    p.add_argument("--classes", type=int, default=None,
                   help="number of classes (default: the synthetic set's for synthetic presets, else 101)")
    p.add_argument("--train-steps", type=int, default=None, help="spa.train_steps T (default: the preset's, 10)")
    p.add_argument("--test-steps", type=int, default=None, help="spa.test_steps (default: the preset's, 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any further config override, e.g. --set train.channels_last=false (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (0 = all cores; default: the preset's train.threads)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs of each case first")
    p.add_argument("--repeats", type=int, default=5, help="timed interleaved runs of each case")
    p.add_argument("--no-conv-peak", action="store_true", help="skip the Conv3d peak measurement")
    p.add_argument("--isolated-memory", action="store_true",
                   help="also measure each case's peak RSS alone, in a fresh subprocess")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, cProfile N ASNet training steps and print the top functions")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    """The preset with the command line's overrides (validated like any run's config)."""
    # Step time does not depend on the weights' values: no pretrained file is needed (the
    # default preset's stand-in is a pipeline output); --set model.pretrained=... still wins.
    ov = [f"preset={args.preset}", "model.pretrained=null", "model.pretrained_dir=null"]
    for key, val in (("model.arch", args.arch), ("model.depth", args.depth), ("model.width", args.width),
                     ("input.clip_len", args.clip_len), ("input.size", args.size),
                     ("train.batch_size", args.batch), ("spa.train_steps", args.train_steps),
                     ("spa.test_steps", args.test_steps), ("train.threads", args.threads)):
        if val is not None:
            ov.append(f"{key}={val}")
    return load_config(overrides=ov + list(args.overrides))


def frame_size(args: argparse.Namespace, cfg: Config) -> tuple[int, int]:
    if args.frame is not None:
        return int(args.frame[0]), int(args.frame[1])
    short = cfg.frames.short_side
    return short, int(round(short * 1.75))


def num_classes(args: argparse.Namespace, cfg: Config) -> int:
    if args.classes is not None:
        return args.classes
    ds = cfg.datasets[0]
    return int(ds.synthetic.get("n_classes", 101)) if ds.kind == "synthetic" else 101


def synthetic_batch(b: int, t: int, h: int, w: int, classes: int, seed: int = 0) -> dict[str, Any]:
    """A batch as `pad_collate` makes it: uint8 clips (B, T, H, W, 3), true sizes, NaN gt boxes."""
    g = torch.Generator().manual_seed(seed)
    return {
        "clip": torch.randint(0, 256, (b, t, h, w, 3), dtype=torch.uint8, generator=g),
        "height": torch.full((b,), h, dtype=torch.long),
        "width": torch.full((b,), w, dtype=torch.long),
        "gt": torch.full((b, t, 4), float("nan")),
        "label": torch.randint(classes, (b,), generator=g),
        "index": torch.arange(b),
    }


# ---------------------------------------------------------------------------------------------
# The steps. Bodies follow asnet/train/loop.py:train_step and asnet/train/evaluate.py:evaluate_run,
# split into timed phases; the loss is read on the host here (the loop keeps its sums on the
# device), which costs nothing on the CPU these cases are meant for. On a GPU,
# benchmarks/gpu_check.py times the loop's own train_step.


def train_step(parts: Parts, variant: Variant, cfg: Config, rt: Runtime, batch: dict[str, Any],
               gen: torch.Generator, it: int, phases: dict[str, float] | None = None) -> float:
    """One iteration of train_run's inner loop. Returns the loss; fills `phases` (seconds)."""
    parts.model.train()
    t0 = time.perf_counter()
    x_ctx, x_sal, episode = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, True, gen, cfg.spa.train_steps)
    t1 = time.perf_counter()
    labels = batch["label"].to(rt.device)
    loss, logits = cnn_step(parts, parts.model, rt, x_ctx, x_sal, labels)
    value = loss.item()
    float((logits.argmax(1) == labels).sum())
    t2 = time.perf_counter()
    if episode is not None and it % cfg.spa.update_every == 0:
        assert parts.agent is not None and parts.agent_optimizer is not None
        ppo_update(parts.agent, parts.agent_optimizer, episode, cfg.spa, gen)
    t3 = time.perf_counter()
    if phases is not None:
        phases["stream_inputs"] = t1 - t0
        phases["cnn_step"] = t2 - t1
        phases["ppo_update"] = t3 - t2
    return value


@torch.no_grad()
def infer_step(parts: Parts, variant: Variant, cfg: Config, rt: Runtime, batch: dict[str, Any],
               gen: torch.Generator) -> int:
    """One video of evaluate_run: its B clips, centre crop (+ SPA), mean softmax score."""
    parts.model.eval()
    x_ctx, x_sal, _ = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
    with rt.autocast():
        scores = torch.softmax(parts.model(x_ctx, x_sal).float(), dim=1).mean(0)
    return int(scores.argmax())


# ---------------------------------------------------------------------------------------------


def flops_per_clip(cfg: Config, classes: int) -> dict[str, float]:
    """FLOPs (torch convention, multiply-add = 2) per clip of each case, from the package's
    own accounting (asnet.report.flops.model_cost): one backbone forward, one of SPA's
    rollout forwards, training steps at ~3x forward per stream plus SPA's episode, inference
    with SPA's test-time forwards."""
    single, asnet = model_cost(cfg, classes, "single"), model_cost(cfg, classes, "asnet")
    return {
        "forward": single["gflops_backbone_forward"] * 1e9,
        "forward_spa": asnet["gflops_spa_forward"] * 1e9,
        "train_plain": single["gflops_train_step"] * 1e9,
        "train_single": single["gflops_train_step"] * 1e9,
        "train_asnet": asnet["gflops_train_step"] * 1e9,
        "infer_single": single["gflops_per_view"] * 1e9,
        "infer_asnet": asnet["gflops_per_view"] * 1e9,
    }


@torch.no_grad()
def conv_peak(repeats: int = 3) -> dict[str, float]:
    """GFLOP/s of a large fp32 Conv3d forward (64 -> 64, 3x3x3, on 4x64x8x56x56) in this process:
    the best of NCDHW and channels_last_3d, best of `repeats`."""
    torch.manual_seed(0)
    conv = nn.Conv3d(64, 64, 3, padding=1, bias=False)
    x = torch.randn(4, 64, 8, 56, 56)
    flops = float(count_flops(conv, (x,)))
    best = {}
    for name, fmt in (("ncdhw", torch.contiguous_format), ("channels_last_3d", torch.channels_last_3d)):
        c = conv.to(memory_format=fmt)
        xi = x.contiguous(memory_format=fmt)
        c(xi)  # warm-up (oneDNN primitive creation)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            c(xi)
            times.append(time.perf_counter() - t0)
        best[name] = flops / min(times) / 1e9
    return {"gflops_per_s": max(best.values()), **{f"gflops_per_s_{k}": v for k, v in best.items()}}


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


def vmhwm_mb() -> float | None:
    """Peak RSS of this process's address space (/proc/self/status VmHWM), None off Linux.

    Unlike ru_maxrss it does not inherit the parent's peak: Linux carries the pre-exec
    peak of a forked child into its ru_maxrss, so a subprocess of a big parent reports
    at least the parent's RSS at fork time.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def build_cases(cfg: Config, classes: int, batch: dict[str, Any], wanted: list[str]) -> dict[str, Callable[[], Any]]:
    """One zero-argument callable per case; each owns its parts and generator."""
    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    plain = Runtime(rt.device, None, False)
    single, asnet = get_variant("single"), get_variant("asnet")
    parts: dict[tuple[str, str], Parts] = {}

    def get_parts(variant: Variant, rtm: Runtime, key: str) -> Parts:
        if (variant.name, key) not in parts:
            parts[(variant.name, key)] = build_parts(cfg, variant, classes, rtm)
        return parts[(variant.name, key)]

    cases: dict[str, Callable[[], Any]] = {}
    counters: dict[str, int] = {}

    def trainer(name: str, variant: Variant, rtm: Runtime, key: str, phases: dict | None = None) -> Callable[[], Any]:
        p = get_parts(variant, rtm, key)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003)
        counters[name] = 0

        def run() -> float:
            it = counters[name]
            counters[name] += 1
            return train_step(p, variant, cfg, rtm, batch, gen, it, phases)

        return run

    def inferer(variant: Variant, rtm: Runtime, key: str) -> Callable[[], Any]:
        p = get_parts(variant, rtm, key)
        gen = torch.Generator().manual_seed(cfg.seed)
        return lambda: infer_step(p, variant, cfg, rtm, batch, gen)

    for name in wanted:
        if name == "train_plain":
            cases[name] = trainer(name, single, plain, "plain")
        elif name == "train_single":
            cases[name] = trainer(name, single, rt, "ours")
        elif name == "train_asnet":
            cases[name] = trainer(name, asnet, rt, "ours", PHASES)
        elif name == "infer_single":
            cases[name] = inferer(single, rt, "ours")
        elif name == "infer_asnet":
            cases[name] = inferer(asnet, rt, "ours")
    cases["_runtime"] = lambda: rt  # type: ignore[assignment]
    return cases


PHASES: dict[str, float] = {}


def isolated_peak(case: str, argv: list[str]) -> float | None:
    """Peak RSS (MB) of a fresh process that builds everything and runs `case` once
    (its VmHWM where available: ru_maxrss of a child includes this process's RSS at fork)."""
    keep, skip = [], {"--cases", "--json", "--profile", "--repeats", "--warmup"}
    it = iter(argv)
    for a in it:
        if a in skip:
            next(it, None)
        elif a.split("=", 1)[0] in skip or a in ("--isolated-memory", "--no-conv-peak"):
            continue
        else:
            keep.append(a)
    cmd = [sys.executable, __file__, *keep, "--cases", case, "--repeats", "0", "--warmup", "1", "--no-conv-peak"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    found: dict[str, float] = {}
    for line in out.stdout.splitlines():
        key, _, rest = line.partition(f" {case} ")
        if key in ("peak_rss_mb", "vmhwm_mb") and rest:
            found[key] = float(rest)
    return found.get("vmhwm_mb", found.get("peak_rss_mb"))


def fmt_ratio(name: str, value: float, goal: float, higher_is_better: bool) -> str:
    ok = value >= goal if higher_is_better else value <= goal
    sign = ">=" if higher_is_better else "<="
    return f"ratio {name}: {value:.2f}x (goal {sign} {goal}x) {'MET' if ok else 'NOT MET'}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = make_config(args)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in wanted if c not in CASES]
    if bad:
        print(f"unknown case(s) {bad}; choose from {CASES}", file=sys.stderr)
        return 2
    threads = set_threads(cfg.train.threads)
    classes = num_classes(args, cfg)
    h, w = frame_size(args, cfg)
    b, t, s = cfg.train.batch_size, cfg.input.clip_len, cfg.input.size
    batch = synthetic_batch(b, t, h, w, classes)
    flops = flops_per_clip(cfg, classes)

    rss0 = maxrss_mb()
    cases = build_cases(cfg, classes, batch, wanted)
    rt = cases.pop("_runtime")()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {threads}, "
          f"runtime: device={rt.device.type} amp={rt.amp_dtype} channels_last={rt.channels_last}")
    print(f"model {cfg.model.arch}-{cfg.model.depth} width {cfg.model.width}, clip {t}x{s}x{s} from frames {h}x{w}, "
          f"batch {b}, classes {classes}, SPA train_steps {cfg.spa.train_steps} test_steps {cfg.spa.test_steps} "
          f"(ppo_epochs {cfg.spa.ppo_epochs}, minibatch {cfg.spa.minibatch}, init_box {cfg.spa.init_box}, "
          f"state_stride {cfg.spa.state_stride}, state_scale {cfg.spa.state_scale})")
    print(f"backbone forward: {flops['forward'] / 1e9:.3f} GFLOP per clip, {flops['forward_spa'] / 1e9:.3f} "
          "per SPA rollout forward (count_flops, multiply-add = 2)")

    peaks: dict[str, float] = {}
    for name in [c for c in MEMORY_ORDER if c in cases]:
        for _ in range(max(args.warmup, 1) if args.repeats else 1):
            cases[name]()
        peaks[name] = maxrss_mb()
        print(f"peak_rss_mb {name} {peaks[name]:.0f}")
        hwm = vmhwm_mb()
        if hwm is not None:
            print(f"vmhwm_mb {name} {hwm:.0f}")

    times: dict[str, list[float]] = {c: [] for c in wanted}
    phase_log: dict[str, list[float]] = {}
    order = [c for c in CASES if c in cases]
    for r in range(args.repeats):
        k = r % len(order)
        for name in order[k:] + order[:k]:
            t0 = time.perf_counter()
            cases[name]()
            times[name].append(time.perf_counter() - t0)
            if name == "train_asnet":
                for ph, v in PHASES.items():
                    phase_log.setdefault(ph, []).append(v)

    peak = conv_peak() if not args.no_conv_peak and args.repeats else None
    results: dict[str, Any] = {
        "config": {"arch": cfg.model.arch, "depth": cfg.model.depth, "width": cfg.model.width, "clip_len": t,
                   "size": s, "frame": [h, w], "batch": b, "classes": classes, "threads": threads,
                   "train_steps": cfg.spa.train_steps, "test_steps": cfg.spa.test_steps,
                   "channels_last": rt.channels_last, "amp": str(rt.amp_dtype)},
        "baseline_rss_mb": rss0, "cases": {}, "ratios": {}, "conv_peak": peak,
    }
    if args.repeats:
        print(f"\n{'case':<14}{'median s/iter':>14}{'min':>9}{'max':>9}{'clips/s':>10}{'GFLOP/s':>10}"
              f"{'% conv peak':>13}{'peak RSS MB':>13}")
    for name in order:
        if not times[name]:
            continue
        med = statistics.median(times[name])
        gf = flops[name] * b / med / 1e9
        row = {"median_s": med, "min_s": min(times[name]), "max_s": max(times[name]), "clips_per_s": b / med,
               "gflops_per_s": gf, "peak_rss_mb": peaks.get(name), "times_s": times[name]}
        if peak:
            row["fraction_of_conv_peak"] = gf / peak["gflops_per_s"]
        results["cases"][name] = row
        pct = f"{100 * row['fraction_of_conv_peak']:.0f}%" if peak else "-"
        print(f"{name:<14}{med:>14.4f}{min(times[name]):>9.4f}{max(times[name]):>9.4f}{b / med:>10.1f}{gf:>10.1f}"
              f"{pct:>13}{peaks.get(name, math.nan):>13.0f}")
    if peak:
        print(f"conv peak (Conv3d 64->64 3x3x3 fp32 forward, 4x64x8x56x56): {peak['gflops_per_s']:.1f} GFLOP/s "
              f"(ncdhw {peak['gflops_per_s_ncdhw']:.1f}, channels_last_3d {peak['gflops_per_s_channels_last_3d']:.1f})")
    if phase_log:
        tot = statistics.median(times["train_asnet"])
        parts_txt = ", ".join(f"{k} {statistics.median(v):.4f}s ({100 * statistics.median(v) / tot:.0f}% of the median step)"
                              for k, v in phase_log.items())
        print(f"train_asnet phases (median): {parts_txt}")
        results["train_asnet_phases_s"] = {k: statistics.median(v) for k, v in phase_log.items()}

    med = {n: results["cases"][n]["median_s"] for n in results["cases"]}
    print()
    if "train_plain" in med and "train_single" in med:
        v = med["train_plain"] / med["train_single"]
        results["ratios"]["single_vs_plain"] = v
        print(fmt_ratio("single_step_speedup_vs_plain_fp32", v, GOALS["single_vs_plain"], True))
    if "train_asnet" in med and "train_single" in med:
        v = med["train_asnet"] / med["train_single"]
        results["ratios"]["asnet_vs_single_train"] = v
        print(fmt_ratio("asnet_step_vs_single_step", v, GOALS["asnet_vs_single_train"], False)
              + f"  [FLOP ratio {flops['train_asnet'] / flops['train_single']:.1f}x]")
    if "infer_asnet" in med and "infer_single" in med:
        v = med["infer_asnet"] / med["infer_single"]
        results["ratios"]["asnet_vs_single_infer"] = v
        print(fmt_ratio("asnet_inference_vs_single_inference", v, GOALS["asnet_vs_single_infer"], False)
              + f"  [FLOP ratio {flops['infer_asnet'] / flops['infer_single']:.1f}x]")

    if args.isolated_memory:
        print("\npeak RSS of each case alone (fresh process: build + one run):")
        results["isolated_peak_rss_mb"] = {}
        for name in order:
            v = isolated_peak(name, argv)
            results["isolated_peak_rss_mb"][name] = v
            print(f"isolated_peak_rss_mb {name} {v if v is None else round(v)}")

    if args.profile and "train_asnet" in cases:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.profile):
            cases["train_asnet"]()
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(35)
        print(f"\ncProfile of {args.profile} train_asnet step(s), by cumulative time:\n{buf.getvalue()}")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
