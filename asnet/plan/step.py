"""Peak device memory of one training (or evaluation) step, measured by running the real step
on fake tensors: every ATen op runs with its real shapes, dtypes and autograd graph, but
allocates nothing (torch's FakeTensorMode), and asnet.memory.LiveBytes adds up the bytes the
step holds alive. A ResNeXt-101 step at batch 32 costs seconds and no memory.

What the fake step is: the project's own model (asnet.models.build_model), SGD with momentum
and the SPA agent with AdamW (as asnet.train.loop.build_parts makes them), and the training
loop's own step, asnet.train.loop.train_step, on a batch shaped as the loader gives it (uint8
clips at the stored frame size, short side frames.short_side, 4:3): the clip batch copied to
the device, every crop, SPA's whole episode (rollout forwards, sampling, rewards), the CNN's
forward and backward in train.accum_steps micro-batches, the SGD step and SPA's PPO update.
Two steps run and the second's peak is taken: the first step's gradients are still alive
during the second's forward (zero_grad comes after it), and the optimizers' state exists
from the first step on. The host's copy of the clip batch is made before the count starts
(it is not device memory).

What is not modelled: the CUDA context (~0.3-0.5 GiB per process, outside the allocator),
cuDNN's convolution workspace, the caching allocator's rounding and fragmentation, the
GradScaler's scalars. On a CPU-only torch the fake tensors of a CUDA run are CPU tensors of
the run's precision (fake CUDA tensors need a CUDA build of torch): autocast is torch's CPU
autocast then, which casts the same layers (convolutions, linear) to fp16 that CUDA autocast
casts, and the model's weights stay in the contiguous format (a channels_last_3d copy of a
fake parameter cannot be swapped in; its bytes are the same).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from asnet.config import Config, with_overrides
from asnet.device import Runtime
from asnet.memory import LiveBytes
from asnet.models import build_model
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import state_dim
from asnet.variants import Variant, get_variant

GIB = 1024**3
PRECISIONS = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def plan_device(cfg: Config) -> str:
    """The device type a plan is made for: the CPU when the config pins it, else CUDA."""
    return "cpu" if cfg.device == "cpu" else "cuda"


def run_device(cfg: Config) -> str:
    """The device type the run itself would use here (as asnet.device.select_runtime picks it)."""
    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(cfg.device).type


def amp_dtype(cfg: Config, device_type: str) -> torch.dtype | None:
    """The autocast dtype of a run on `device_type` (select_runtime's rule, without needing the device)."""
    amp = cfg.train.amp
    if amp == "auto":
        return torch.float16 if device_type == "cuda" else None
    return None if amp == "off" else {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def precision(cfg: Config, device_type: str) -> str:
    """fp16, bf16 or fp32: the precision of a run of `cfg` on `device_type`."""
    return PRECISIONS[amp_dtype(cfg, device_type)]


def _fake_runtime(cfg: Config, device_type: str) -> Runtime:
    """The Runtime the fake step runs with: the run's precision and memory format, on fake
    CUDA tensors where torch has CUDA, else on fake CPU tensors (module docstring)."""
    dtype = amp_dtype(cfg, device_type)
    dev = torch.device("cuda" if device_type == "cuda" and torch.cuda.is_available() else "cpu")
    cpu_bf16 = device_type == "cpu" and dtype == torch.bfloat16
    cl = cfg.train.channels_last
    # Fake tensors hold no values: the crops must be the batched ones that read none (a GPU
    # run's; on the CPU they hold an fp32 copy of the clip batch the window crops do not).
    return Runtime(dev, dtype, (not cpu_bf16) if cl == "auto" else bool(cl), crop_method="matrix")


@contextmanager
def _fake_tracked():
    """FakeTensorMode with a LiveBytes tracker inside it; the global RNG is left as it was
    (a training run may call this mid-run)."""
    with torch.random.fork_rng(devices=[]), FakeTensorMode(allow_non_fake_inputs=True), LiveBytes() as live:
        yield live


def _parts(cfg: Config, variant: Variant, num_classes: int, rt: Runtime):
    """Model, SGD and (SPA) agent with AdamW as asnet.train.loop.build_parts makes them (no
    pretrained weights: the values do not matter, the tensors do)."""
    from asnet.train.loop import Parts

    with torch.device(rt.device):
        model = build_model(cfg.model, num_classes, variant.streams)
        t = cfg.train
        opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                              foreach=True)
        agent = agent_opt = None
        if variant.saliency == "spa":
            agent = ActorCritic(state_dim(model.feature_dim, num_classes, cfg.spa.state), cfg.spa.actions,
                                cfg.spa.hidden, cfg.spa.state_norm)
            agent_opt = torch.optim.AdamW(agent.parameters(), lr=cfg.spa.lr, weight_decay=cfg.spa.weight_decay,
                                          foreach=True)
    # No GradScaler: its step reads found_inf with .item(), which fake tensors cannot; it only
    # adds scalars (it unscales the gradients in place).
    return Parts(model, opt, None, agent, agent_opt, None)  # type: ignore[arg-type]


def frame_size(cfg: Config) -> tuple[int, int]:
    """(H, W) of stored frames: short side frames.short_side at 4:3 (UCF-101's and most of
    HMDB-51's 320x240)."""
    short = cfg.frames.short_side
    return short, -(-short * 4 // 3)


def _batch(cfg: Config, n: int) -> dict[str, Any]:
    """A training batch of `n` clips as asnet.data.clips.pad_collate gives it (real data: no actor boxes)."""
    h, w = frame_size(cfg)
    return {"clip": torch.empty(n, cfg.input.clip_len, h, w, 3, dtype=torch.uint8),
            "height": torch.full((n,), h, dtype=torch.long), "width": torch.full((n,), w, dtype=torch.long),
            "label": torch.zeros(n, dtype=torch.long), "gt": torch.full((n, 4), float("nan")), "has_gt": False,
            "index": torch.arange(n)}


def _run_train_steps(cfg: Config, variant: Variant, num_classes: int, batch: int, rt: Runtime,
                     live: LiveBytes | None, steps: int = 2, on_step: Callable[[int], None] | None = None) -> None:
    """`steps` calls of the loop's train_step on batches of `batch` clips (the process's batch;
    cfg.train.accum_steps splits its CNN step); `live.reset_peak()` before the last one."""
    from asnet.train.loop import train_step

    parts = _parts(cfg, variant, num_classes, rt)
    gen = torch.Generator().manual_seed(cfg.seed)
    for i in range(steps):
        data = _batch(cfg, batch)
        if live is not None:
            live.forget(data)  # the host's batch: not device memory
            if i == steps - 1:
                live.reset_peak()
        train_step(parts, parts.model, parts.agent, cfg.spa, variant, cfg, rt, data, gen, update_spa=True)
        del data
        if on_step is not None:
            on_step(i)


_CACHE: dict[str, int] = {}


def _case_key(kind: str, cfg: Config, variant: Variant, num_classes: int, batch: int, device_type: str) -> str:
    """What a step's memory depends on: the model, input, frame, SPA and precision settings,
    the accumulation, the variant, classes, batch and device. Jobs that differ only in data
    share a measurement."""
    c = asdict(cfg)
    keep = {"model": c["model"], "input": c["input"], "spa": c["spa"], "amp": c["train"]["amp"],
            "channels_last": c["train"]["channels_last"], "accum_steps": c["train"]["accum_steps"],
            "norm_eval": c["train"]["norm_eval"], "short_side": c["frames"]["short_side"]}
    return json.dumps([kind, keep, variant.streams, variant.saliency, num_classes, batch, device_type],
                      sort_keys=True, default=str)


def _cached(key: str, measure: Callable[[], int]) -> int:
    if key not in _CACHE:
        _CACHE[key] = measure()
    return _CACHE[key]


def train_peak_bytes(cfg: Config, variant_name: str, num_classes: int, micro_batch: int, device_type: str,
                     accum_steps: int = 1) -> int:
    """Peak bytes of one training step whose CNN runs micro-batches of `micro_batch` clips,
    `accum_steps` of them per step (the process's batch: micro_batch x accum_steps clips, which
    SPA's episode plays at once), on `device_type` at the run's precision, measured on fake
    tensors (the second of two steps); cached per distinct case."""
    if micro_batch < 1:
        raise ValueError(f"micro-batch must be >= 1 clip, got {micro_batch}")
    variant = get_variant(variant_name)
    cfg = with_overrides(cfg, {**dict(variant.overrides), "train.accum_steps": accum_steps, "train.nproc_per_node": 1})
    key = _case_key("train", cfg, variant, num_classes, micro_batch, device_type)

    def measure() -> int:
        rt = _fake_runtime(cfg, device_type)
        with _fake_tracked() as live:
            _run_train_steps(cfg, variant, num_classes, micro_batch * accum_steps, rt, live)
        return live.peak

    return _cached(key, measure)


def eval_peak_bytes(cfg: Config, variant_name: str, num_classes: int, batch: int, device_type: str) -> int:
    """Peak bytes of one evaluation batch (`batch` clips of a video, no autograd: the loop's
    stream_inputs at test time, SPA's test-time episode for SPA variants, and the model's
    forward) on fake tensors; cached per distinct case."""
    from asnet.train.loop import stream_inputs

    variant = get_variant(variant_name)
    cfg = with_overrides(cfg, variant.overrides)
    key = _case_key("eval", cfg, variant, num_classes, batch, device_type)

    def measure() -> int:
        rt = _fake_runtime(cfg, device_type)
        with _fake_tracked() as live:
            parts = _parts(cfg, variant, num_classes, rt)
            model = parts.model.eval()
            data = _batch(cfg, batch)
            live.forget(data)
            live.reset_peak()
            with torch.no_grad():
                x_ctx, x_sal, _ = stream_inputs(model, parts.agent, variant, cfg, rt, data, False,
                                                torch.Generator().manual_seed(cfg.seed), cfg.spa.test_steps)
                with rt.autocast():
                    model(x_ctx, x_sal).float()
        return live.peak

    return _cached(key, measure)


def step_peak_bytes(cfg: Config, variant_name: str, num_classes: int, micro_batch: int,
                    device_type: str | None = None) -> int:
    """The measured fake-step peak (bytes) of one training step of `variant_name` whose CNN
    runs micro-batches of `micro_batch` clips, cfg.train.accum_steps of them, on the run's
    device type and precision (`device_type` None: the device the run would use on this
    machine, as select_runtime picks it; "cuda" plans a GPU run from a CPU-only machine)."""
    return train_peak_bytes(cfg, variant_name, num_classes, micro_batch, device_type or run_device(cfg),
                            accum_steps=cfg.train.accum_steps)


def splits(batch_size: int) -> list[int]:
    """The ways a batch can be split into equal micro-batches: the divisors of `batch_size`."""
    return [k for k in range(1, batch_size + 1) if batch_size % k == 0]


def smallest_split(cfg: Config, variant_name: str, num_classes: int, limit_bytes: int,
                   device_type: str) -> tuple[int, int] | None:
    """The smallest k (a divisor of train.batch_size) such that train.accum_steps = k fits one
    process's step in `limit_bytes`, and that step's peak; None if not even micro-batches of
    one clip fit. nproc_per_node = k fits too (its processes also play SPA's episode on
    batch / k clips, so they need no more). Peaks fall with k, so the search measures only the
    splits it needs (and caches them)."""
    b = cfg.train.batch_size
    for k in splits(b):
        peak = train_peak_bytes(cfg, variant_name, num_classes, b // k, device_type, accum_steps=k)
        if peak <= limit_bytes:
            return k, peak
    return None


def oom_message(cfg: Config, variant_name: str, num_classes: int, limit_bytes: int, run: str,
                device_type: str | None = None, measured: int | None = None) -> str:
    """One message for a run whose step does not fit in `limit_bytes`: the preset, the need
    (`measured`, or the fake-step peak of the configured step), the limit, and the smallest
    train.accum_steps (or the nproc_per_node alternative) that would fit, or that none does."""
    dev = device_type or run_device(cfg)
    t = cfg.train
    per_proc = t.batch_size // max(1, t.nproc_per_node)
    micro = per_proc // max(1, t.accum_steps)
    need = measured if measured is not None else train_peak_bytes(cfg, variant_name, num_classes, micro, dev,
                                                                  accum_steps=t.accum_steps)
    how = "measured" if measured is not None else "asnet plan's fake-tensor step"
    head = (f"{run}: one training step of {variant_name} (preset {cfg.preset}, {cfg.input.clip_len}-frame clips, "
            f"micro-batch {micro} = train.batch_size {t.batch_size} / (nproc_per_node {t.nproc_per_node} x "
            f"accum_steps {t.accum_steps}), {precision(cfg, dev)} on {dev}) needs {need / GIB:.2f} GiB ({how}), "
            f"above the limit of {limit_bytes / GIB:.2f} GiB")
    fit = smallest_split(cfg, variant_name, num_classes, limit_bytes, dev)
    if fit is None:
        one = train_peak_bytes(cfg, variant_name, num_classes, 1, dev, accum_steps=t.batch_size)
        return (f"{head}; no split fits: even micro-batches of 1 clip need {one / GIB:.2f} GiB. Use a larger "
                "device, a shorter input.clip_len or a smaller model")
    k, peak = fit
    if k <= t.accum_steps * max(1, t.nproc_per_node):
        # Splitting across processes is what the run does already: only more accumulation helps.
        k = t.accum_steps * max(1, t.nproc_per_node) * 2
    fix = f"set train.accum_steps={k}" + (" with train.nproc_per_node=1" if t.nproc_per_node > 1 else "")
    alt = f", or train.nproc_per_node={k} with accum_steps 1 (one GPU each)" if k > 1 else ""
    return (f"{head}; {fix}{alt}: micro-batches of {t.batch_size // k} clips need "
            f"{train_peak_bytes(cfg, variant_name, num_classes, t.batch_size // k, dev, accum_steps=k) / GIB:.2f} GiB")


def measure_steps(cfg: Config, variant_name: str, num_classes: int, micro_batch: int, steps: int = 20,
                  warmup: int = 2) -> dict[str, Any]:
    """`--measure`: time `steps` real training steps (the same step as the fake one, on real
    tensors, after `warmup` steps) on the device this machine has; seconds per step and the
    measured peak (CUDA: max_memory_allocated; CPU: asnet.memory.LiveBytes on real tensors)."""
    variant = get_variant(variant_name)
    cfg = with_overrides(cfg, variant.overrides)
    dev = run_device(cfg)
    rt = _fake_runtime(cfg, dev)  # the real device here: on CUDA builds that is CUDA
    times: list[float] = []
    start = [0.0]

    def sync() -> None:
        if rt.device.type == "cuda":
            torch.cuda.synchronize()

    def tick(i: int) -> None:
        sync()
        now = time.perf_counter()
        if i >= warmup:
            times.append(now - start[0])
        start[0] = now

    live = LiveBytes() if rt.device.type == "cpu" else None
    if rt.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if live is not None:
            with live:
                sync()
                start[0] = time.perf_counter()
                _run_train_steps(cfg, variant, num_classes, micro_batch, rt, live, warmup + steps, tick)
        else:
            start[0] = time.perf_counter()
            _run_train_steps(cfg, variant, num_classes, micro_batch, rt, None, warmup + steps, tick)
    peak = live.peak if live is not None else torch.cuda.max_memory_allocated()
    times.sort()
    return {"device": dev, "steps": len(times), "s_per_step": times[len(times) // 2], "peak_bytes": peak}
