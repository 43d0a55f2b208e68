"""How close `asnet plan`'s predicted step peak (fake tensors) is to the real step's memory,
on the CPU at a reduced size, for single / ASNet x 16 / 64 frames.

The real step is the training loop's own: asnet.train.loop.build_parts, stream_inputs on a
uint8 clip batch at the stored frame size (context crop, SPA's episode, saliency crop),
cnn_step, ppo_update; two steps, the second measured. Its memory is measured two ways:

* saved: the bytes autograd saves for backward in the second step (unique storages packed
  by torch.autograd.graph.saved_tensors_hooks, parameters excluded) plus the parameters,
  the first step's gradients (alive during the forward: zero_grad comes after it) and SGD's
  momentum: what the issue asks the prediction to be within 15% of;
* live: asnet.memory.LiveBytes on the real tensors (every storage the step allocates).

The prediction is asnet.plan.step.train_peak_bytes at the same configuration on the CPU
(fp32). Prints one `ratio <case>: predicted/saved=... predicted/live=...` line per case.

    python benchmarks/plan_memory.py                       # ~1 min on 2 cores
    python benchmarks/plan_memory.py --depth 18 --width 32 --size 112 --batch 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asnet.config import load_config  # noqa: E402
from asnet.device import select_runtime  # noqa: E402
from asnet.memory import LiveBytes  # noqa: E402
from asnet.plan.step import train_peak_bytes  # noqa: E402
from asnet.spa.rollout import ppo_update  # noqa: E402
from asnet.train.loop import build_parts, cnn_step, stream_inputs  # noqa: E402
from asnet.variants import get_variant  # noqa: E402

MIB = 1024**2


def real_step_bytes(cfg, variant_name: str, num_classes: int, n: int, frame: tuple[int, int]) -> dict[str, int]:
    """Two real training steps on the CPU; the second one's saved-tensor and live peaks."""
    variant = get_variant(variant_name)
    rt = select_runtime("cpu", "off", False)
    gen = torch.Generator().manual_seed(0)
    h, w = frame
    with LiveBytes() as live:
        parts = build_parts(cfg, variant, num_classes, rt)
        params = {id(p.untyped_storage()) for p in parts.model.parameters()}
        param_bytes = sum(p.numel() * p.element_size() for p in parts.model.parameters())
        saved_bytes = 0
        for step in range(2):
            batch = {
                "clip": torch.randint(0, 256, (n, cfg.input.clip_len, h, w, 3), dtype=torch.uint8, generator=gen),
                "height": torch.full((n,), h), "width": torch.full((n,), w),
                "label": torch.arange(n) % num_classes, "gt": torch.full((n, 4), float("nan")),
            }
            if step == 1:
                live.reset_peak()
            seen: set[int] = set()
            saved = [0]

            def pack(t: torch.Tensor, seen=seen, saved=saved) -> torch.Tensor:
                key = id(t.untyped_storage())
                if key not in seen and key not in params:
                    seen.add(key)
                    saved[0] += t.untyped_storage().nbytes()
                return t

            x_ctx, x_sal, episode = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, True, gen,
                                                  cfg.spa.train_steps)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                cnn_step(parts, parts.model, rt, x_ctx, x_sal, batch["label"])
            if episode is not None:
                ppo_update(parts.agent, parts.agent_optimizer, episode, cfg.spa, gen)
            saved_bytes = saved[0]
            del x_ctx, x_sal, episode, batch
    # parameters + the previous step's gradients + SGD momentum, all alive during the forward
    return {"saved": saved_bytes + 3 * param_bytes, "live": live.peak, "activations": saved_bytes,
            "params": param_bytes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="network input pixels (the paper: 112)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", default="16,64", help="clip lengths to measure")
    p.add_argument("--frame", type=int, nargs=2, default=(64, 85), metavar=("H", "W"), help="stored frame size")
    p.add_argument("--train-steps", type=int, default=3, help="SPA steps per episode (the paper: 10)")
    p.add_argument("--variants", default="single,asnet")
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for t in (int(x) for x in args.frames.split(",")):
        for v in args.variants.split(","):
            init = max(8, round(args.frame[0] * 112 / 256))
            cfg = load_config(overrides=[
                "preset=default", "device=cpu", "train.amp=\"off\"", "train.channels_last=false",
                f"model.arch={args.arch}", f"model.depth={args.depth}", f"model.width={args.width}",
                "model.pretrained=null", f"input.clip_len={t}", f"input.size={args.size}",
                f"train.batch_size={args.batch}", f"spa.train_steps={args.train_steps}",
                f"spa.init_box={init}", f"spa.min_side={max(4, init // 2)}", f"spa.minibatch={args.batch}",
            ])
            start = time.perf_counter()
            predicted = train_peak_bytes(cfg, v, args.classes, args.batch, "cpu")
            fake_s = time.perf_counter() - start
            real = real_step_bytes(cfg, v, args.classes, args.batch, tuple(args.frame))
            case = f"{v}_{t}f"
            results[case] = {"predicted": predicted, **real, "fake_s": fake_s,
                             "ratio_saved": predicted / real["saved"], "ratio_live": predicted / real["live"]}
            print(f"{case}: predicted {predicted / MIB:.1f} MiB (fake step {fake_s:.1f} s), real saved+params/grads/"
                  f"momentum {real['saved'] / MIB:.1f} MiB, real live peak {real['live'] / MIB:.1f} MiB")
            print(f"ratio {case}: predicted/saved={predicted / real['saved']:.3f} "
                  f"predicted/live={predicted / real['live']:.3f}", flush=True)
    worst = max(abs(r["ratio_saved"] - 1) for r in results.values())
    print(f"worst |predicted/saved - 1| = {worst:.3f} (goal: <= 0.15)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
