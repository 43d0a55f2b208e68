"""Peak device memory of one training (or evaluation) step, measured by running the real step
on fake tensors: every ATen op runs with its real shapes, dtypes and autograd graph, but
allocates nothing (torch's FakeTensorMode), and asnet.memory.LiveBytes adds up the bytes the
step holds alive. A ResNeXt-101 step at batch 32 costs seconds and no memory.

What the fake step is: the project's own model (asnet.models.build_model), SGD with momentum
(foreach, as asnet.train.loop.build_parts), the CNN step of the training loop
(asnet.train.loop.cnn_step: forward of both streams under the run's autocast, zero_grad after
the forward, backward, SGD step) and, for variants with SPA, its episode's forwards and a PPO
step of the agent. Two steps run and the second's peak is taken: the first step's gradients
are still alive during the second's forward (zero_grad comes after it), and SGD's momentum
buffers exist from the first step on.

Until asnet.data.crops.crop_resize is sync-free, SPA's episode is modelled by the forwards
asnet.spa.rollout.run_episode makes (scene feature map, then `train_steps + 1` patch
embeddings and head evaluations, no autograd, CNN in eval mode) on crops that are already on
the device; the agent's sampling is left out (a (B, A) tensor per step).

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
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from asnet.config import Config, with_overrides
from asnet.device import Runtime
from asnet.memory import LiveBytes
from asnet.models import build_model
from asnet.report.flops import spa_clip_shape
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import SPATIAL_GRID, state_dim
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
    return Runtime(dev, dtype, (not cpu_bf16) if cl == "auto" else bool(cl))


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


def _clips(rt: Runtime, n: int, frames: int, size: int) -> torch.Tensor:
    """A batch of `n` network inputs (n, 3, frames, size, size) on the device, as Runtime.to_input gives them."""
    return rt.to_input(torch.empty(n, 3, frames, size, size, device=rt.device))


def _episode_states(model: torch.nn.Module, cfg: Config, rt: Runtime, n: int, steps: int, train: bool) -> torch.Tensor:
    """SPA's episode on `n` clips as asnet.spa.rollout.run_episode runs it (CNN fixed, eval
    mode, no autograd): the scene's feature map, then one patch embedding and head evaluation
    for the initial box and each step that needs one. Returns the states (steps, n, S)."""
    t_spa, s_spa = spa_clip_shape(cfg)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        with rt.autocast():
            fmap = model.backbone.feature_map(_clips(rt, n, t_spa, s_spa)).float()
        s_g = F.adaptive_avg_pool3d(fmap, 1).flatten(1)
        s_map = F.adaptive_avg_pool3d(fmap, SPATIAL_GRID).flatten(1)

        def embed() -> tuple[torch.Tensor, torch.Tensor]:
            with rt.autocast():
                s_p = model.features(_clips(rt, n, t_spa, s_spa)).float()
            return s_p, model.head(s_g, s_p).float()

        s_p, s_l = embed()
        states = []
        for step in range(steps):
            extra = [s_map, torch.zeros(n, 4, device=rt.device)] if cfg.spa.state == "spatial" else []
            states.append(torch.cat([s_g, s_p, s_l, *extra], dim=1))
            if train or step < steps - 1:
                s_p, s_l = embed()
    model.train(was_training)
    return torch.stack(states)


def _ppo_step(agent: ActorCritic, optimizer: torch.optim.Optimizer, states: torch.Tensor, minibatch: int) -> None:
    """One PPO minibatch step of the agent (forward, backward, AdamW step); the loss's terms
    differ from asnet.spa.ppo's (those read values back with .item()), its tensors are alike."""
    flat = states.reshape(-1, states.shape[-1])[:minibatch]
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)  # validation reads values
    try:
        dist, value = agent(flat)
        loss = value.square().mean() + dist.mean.sum()
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _run_train_steps(cfg: Config, variant: Variant, num_classes: int, micro_batch: int, rt: Runtime,
                     live: LiveBytes | None, steps: int = 2, on_step: Callable[[int], None] | None = None) -> None:
    """`steps` training steps of `micro_batch` clips; `live.reset_peak()` before the last one."""
    from asnet.train.loop import cnn_step

    parts = _parts(cfg, variant, num_classes, rt)
    t, s = cfg.input.clip_len, cfg.input.size
    for i in range(steps):
        if live is not None and i == steps - 1:
            live.reset_peak()
        x_ctx = _clips(rt, micro_batch, t, s)
        states = None
        if variant.saliency == "spa":
            states = _episode_states(parts.model, cfg, rt, micro_batch, cfg.spa.train_steps, train=True)
        x_sal = _clips(rt, micro_batch, t, s) if variant.streams == 2 else None
        labels = torch.zeros(micro_batch, dtype=torch.long, device=rt.device)
        cnn_step(parts, parts.model, rt, x_ctx, x_sal, labels)
        if states is not None:
            _ppo_step(parts.agent, parts.agent_optimizer, states, cfg.spa.minibatch)
        del x_ctx, x_sal, states, labels
        if on_step is not None:
            on_step(i)


_CACHE: dict[str, int] = {}


def _case_key(kind: str, cfg: Config, variant: Variant, num_classes: int, batch: int, device_type: str) -> str:
    """What a step's memory depends on: the model, input, SPA and precision settings, the
    variant, classes, batch and device. Jobs that differ only in data share a measurement."""
    c = asdict(cfg)
    keep = {"model": c["model"], "input": c["input"], "spa": c["spa"], "amp": c["train"]["amp"],
            "channels_last": c["train"]["channels_last"], "minibatch": c["spa"]["minibatch"]}
    return json.dumps([kind, keep, variant.streams, variant.saliency, num_classes, batch, device_type],
                      sort_keys=True, default=str)


def _cached(key: str, measure: Callable[[], int]) -> int:
    if key not in _CACHE:
        _CACHE[key] = measure()
    return _CACHE[key]


def train_peak_bytes(cfg: Config, variant_name: str, num_classes: int, micro_batch: int, device_type: str) -> int:
    """Peak bytes of one training step of `micro_batch` clips on `device_type` at the run's
    precision, measured on fake tensors (the second of two steps); cached per distinct case."""
    if micro_batch < 1:
        raise ValueError(f"micro-batch must be >= 1 clip, got {micro_batch}")
    variant = get_variant(variant_name)
    cfg = with_overrides(cfg, variant.overrides)
    key = _case_key("train", cfg, variant, num_classes, micro_batch, device_type)

    def measure() -> int:
        rt = _fake_runtime(cfg, device_type)
        with _fake_tracked() as live:
            _run_train_steps(cfg, variant, num_classes, micro_batch, rt, live)
        return live.peak

    return _cached(key, measure)


def eval_peak_bytes(cfg: Config, variant_name: str, num_classes: int, batch: int, device_type: str) -> int:
    """Peak bytes of one evaluation batch (`batch` views of a video, no autograd, SPA's
    test-time episode for SPA variants) on fake tensors; cached per distinct case."""
    variant = get_variant(variant_name)
    cfg = with_overrides(cfg, variant.overrides)
    key = _case_key("eval", cfg, variant, num_classes, batch, device_type)

    def measure() -> int:
        rt = _fake_runtime(cfg, device_type)
        with _fake_tracked() as live:
            parts = _parts(cfg, variant, num_classes, rt)
            model = parts.model.eval()
            live.reset_peak()
            with torch.no_grad():
                if variant.saliency == "spa":
                    _episode_states(model, cfg, rt, batch, cfg.spa.test_steps, train=False)
                x_sal = _clips(rt, batch, cfg.input.clip_len, cfg.input.size) if variant.streams == 2 else None
                with rt.autocast():
                    model(_clips(rt, batch, cfg.input.clip_len, cfg.input.size), x_sal).float()
        return live.peak

    return _cached(key, measure)


def step_peak_bytes(cfg: Config, variant_name: str, num_classes: int, micro_batch: int,
                    device_type: str | None = None) -> int:
    """The measured fake-step peak (bytes) of one training step of `micro_batch` clips of
    `variant_name`, on the run's device type and precision (`device_type` None: the device
    the run would use on this machine, as select_runtime picks it; "cuda" plans a GPU run
    from a CPU-only machine). `cfg` is the run's configuration."""
    return train_peak_bytes(cfg, variant_name, num_classes, micro_batch, device_type or run_device(cfg))


def splits(batch_size: int) -> list[int]:
    """The ways a batch can be split into equal micro-batches: the divisors of `batch_size`."""
    return [k for k in range(1, batch_size + 1) if batch_size % k == 0]


def smallest_split(cfg: Config, variant_name: str, num_classes: int, limit_bytes: int,
                   device_type: str) -> tuple[int, int] | None:
    """The smallest k = nproc_per_node x accum_steps (a divisor of train.batch_size) whose
    micro-batch of batch_size / k clips fits in `limit_bytes`, and that micro-batch's peak;
    None if not even one clip fits. Peaks grow with the micro-batch, so the search measures
    only the splits it needs (and caches them)."""
    b = cfg.train.batch_size
    for k in splits(b):
        peak = train_peak_bytes(cfg, variant_name, num_classes, b // k, device_type)
        if peak <= limit_bytes:
            return k, peak
    return None


def oom_message(cfg: Config, variant_name: str, num_classes: int, limit_bytes: int, run: str,
                device_type: str | None = None) -> str:
    """One message for a run whose step does not fit in `limit_bytes`: the preset, the need
    (the measured fake-step peak at the configured micro-batch), the limit, and the smallest
    train.accum_steps (and the nproc_per_node alternative) that would fit, or that none does."""
    dev = device_type or run_device(cfg)
    t = cfg.train
    per_proc = t.batch_size // max(1, t.nproc_per_node)
    micro = per_proc // max(1, t.accum_steps)
    need = train_peak_bytes(cfg, variant_name, num_classes, micro, dev)
    head = (f"{run}: one training step of {variant_name} (preset {cfg.preset}, {cfg.input.clip_len}-frame clips, "
            f"micro-batch {micro} = train.batch_size {t.batch_size} / (nproc_per_node {t.nproc_per_node} x "
            f"accum_steps {t.accum_steps}), {precision(cfg, dev)} on {dev}) needs {need / GIB:.2f} GiB, "
            f"above the limit of {limit_bytes / GIB:.2f} GiB")
    fit = smallest_split(cfg, variant_name, num_classes, limit_bytes, dev)
    if fit is None:
        return (f"{head}; no split fits: even a micro-batch of 1 clip needs "
                f"{train_peak_bytes(cfg, variant_name, num_classes, 1, dev) / GIB:.2f} GiB. Use a larger device, "
                "a shorter input.clip_len or a smaller model")
    k, peak = fit
    if k % max(1, t.nproc_per_node) == 0:
        accum = k // max(1, t.nproc_per_node)
        fix = f"set train.accum_steps={accum}" + (f" (with nproc_per_node {t.nproc_per_node})"
                                                   if t.nproc_per_node > 1 else "")
    else:
        fix = f"set train.nproc_per_node=1 and train.accum_steps={k}"
    alt = f", or train.nproc_per_node={k} with accum_steps 1" if k > 1 else ""
    return f"{head}; {fix}{alt}: micro-batch {t.batch_size // k} needs {peak / GIB:.2f} GiB"


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
