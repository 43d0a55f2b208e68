#!/usr/bin/env python
"""Host syncs and host-to-device bytes per ASNet training step (`asnet.train.loop.train_step`).

Runs on the CPU, so neither quantity can be measured by the hardware; both are counted at
the Python level instead, with a `torch.overrides.TorchFunctionMode` that sees every torch
function and Tensor method the step calls (`item`, `__bool__`, `.to`, `copy_`, ...), plus a
wrapper around `torch.cuda.synchronize`. Everything is restored when the counting ends.

Where a tensor lives on a CUDA run is tracked by a mark on the tensor object, because on the
CPU every tensor is on the same device:

  device  model/agent parameters, buffers, gradients and optimizer state; the result of any
          `.to(...)`/`.cuda()` given a device (`.to(rt.device)` is a no-op on the CPU, a copy
          on CUDA); a factory call given `device=`; anything computed from a device tensor
  host    the batch's tensors (what the DataLoader hands over); factory calls without a
          device (`torch.rand(n, generator=cpu_gen)`, `torch.tensor([...])`) or with the
          string "cpu" (how torch's AdamW keeps its step counters on the host; the package
          names the run's device by a torch.device); anything computed only from host
          tensors; the result of `.cpu()`/`.numpy()`

Counted, during the measured `train_step` calls only (after a warm-up step):

  reads     item, tolist, cpu, numpy, __bool__, __int__, __float__, __index__ and ops whose
            output shape depends on values (nonzero, masked_select, unique, argwhere,
            boolean-mask indexing). On a device tensor each makes the host wait for the GPU
            (a sync); on a host tensor it is an ordinary CPU read and costs no sync.
  H2D       `.to`/`.cuda` with a device, `copy_` into a device tensor, `torch.tensor`/
            `as_tensor` with a device: bytes of the source when it is not already a device
            tensor (a `.to(device)` of a device tensor is listed as a no-op, 0 bytes).
  synchronize  torch.cuda.synchronize calls.

Each call is reported with its Python call site (the first frame outside torch and this
file). Host-to-device bytes scale linearly with the batch (the clip batch, the worker crops,
the per-clip metadata and SPA's minibatch indices), except the normalisation constants (a
few hundred bytes), so per-clip bytes x 32 is the paper's batch-32 step.

Example (paper geometry: 16x112x112 crops from 256x340 frames, SPA 10 train steps; a small
ResNet-10 w16 so that it runs in about a minute on a CPU; batch 4):

  python benchmarks/step_syncs.py --batch 4 --steps 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import synthetic_batch  # noqa: E402  (the benchmarks' shared batch builder)

from asnet.config import Config, load_config  # noqa: E402
from asnet.data.clips import pad_collate  # noqa: E402
from asnet.device import Runtime, select_runtime  # noqa: E402
from asnet.train.inputs import WorkerCrops  # noqa: E402
from asnet.train.loop import Parts, build_parts, train_step  # noqa: E402
from asnet.variants import get_variant  # noqa: E402

READS = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__"}
VALUE_SHAPED = {"nonzero", "masked_select", "unique", "unique_consecutive", "argwhere", "nonzero_static"}
FACTORY_COPIES = {"tensor", "as_tensor"}  # build a tensor from host data: a copy when given a device
TORCH_DIR = os.path.dirname(torch.__file__)
THIS_FILE = os.path.abspath(__file__)
REPO = Path(__file__).resolve().parent.parent
MARK = "_step_syncs_where"
OLD_FLOAT_BATCHES = 13  # float32 crop batches the earlier design sent to the device per step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="host syncs and host-to-device bytes per ASNet training step "
                                "(counted at the Python level on the CPU)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, default=4, help="clips per batch")
    p.add_argument("--clip-len", type=int, default=16, help="input.clip_len (the paper: 16, and 64)")
    p.add_argument("--frame", type=int, nargs=2, default=(256, 340), metavar=("H", "W"), help="stored frame size")
    p.add_argument("--steps", type=int, default=2, help="measured train_step calls (after one warm-up step)")
    p.add_argument("--worker-crops", choices=("preset", "on", "off"), default="preset",
                   help="train.crop_in_workers: the paper preset's (on), or forced on/off")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="further config override (repeatable)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and 1 measured step (for the tests)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")
    return p.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    """The paper preset's geometry with a small CNN (the counts do not depend on its size)."""
    ov = ["preset=paper", "model.pretrained=null", "model.pretrained_dir=null", "model.arch=resnet",
          "model.depth=10", "model.width=16", f"train.batch_size={args.batch}", "device=cpu", "train.amp='off'",
          f"input.clip_len={args.clip_len}"]
    if args.worker_crops != "preset":
        ov.append(f"train.crop_in_workers={args.worker_crops == 'on'}")
    if args.smoke:
        ov += ["input.size=32", "spa.init_box=32", "spa.min_side=16", "spa.train_steps=2", "model.width=8"]
    return load_config(overrides=ov + list(args.overrides))


def loader_batch(cfg: Config, b: int, t: int, h: int, w: int, classes: int) -> dict[str, Any]:
    """A batch as the training loader hands it over: items of `synthetic_batch`, cut by
    `WorkerCrops` when train.crop_in_workers (as ClipDataset does in its workers), `pad_collate`d."""
    whole = synthetic_batch(b, t, h, w, classes, seed=cfg.seed)
    crops = WorkerCrops.of(get_variant("asnet"), cfg) if cfg.train.crop_in_workers else None
    items = []
    for i in range(b):
        item = {"clip": whole["clip"][i], "height": h, "width": w, "gt": whole["gt"][i],
                "label": int(whole["label"][i]), "index": i}
        if crops is not None:
            item = crops(item, np.random.SeedSequence([cfg.seed, 0, i]))
        items.append(item)
    return pad_collate(items)


# ---------------------------------------------------------------------------------------------


def mark(t: Any, where: str, overwrite: bool = True) -> None:
    """Tag tensor `t` as living on the host or the device of a CUDA run."""
    if isinstance(t, torch.Tensor) and (overwrite or getattr(t, MARK, None) is None):
        try:
            setattr(t, MARK, where)
        except (AttributeError, RuntimeError):  # a few C++-owned tensors take no attributes
            pass


def where(t: Any) -> str | None:
    return getattr(t, MARK, None) if isinstance(t, torch.Tensor) else None


def call_site() -> str:
    """file:line (function) of the first caller outside torch and this file."""
    f = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith(TORCH_DIR)
                             or os.path.abspath(f.f_code.co_filename) == THIS_FILE):
        f = f.f_back
    if f is None:
        return "?"
    path = Path(f.f_code.co_filename)
    try:
        path = path.resolve().relative_to(REPO)
    except ValueError:
        pass
    return f"{path}:{f.f_lineno} ({f.f_code.co_name})"


def side(device: Any) -> str:
    """Which side a device argument names on a CUDA run. The package passes the run's device
    as a torch.device (rt.device, x.device); torch's own host-side state (AdamW's step
    counters) and code meaning the host name it by the string "cpu"."""
    return "host" if isinstance(device, str) and device.startswith("cpu") else "device"


def target_side(args: tuple, kwargs: dict) -> tuple[str | None, torch.Tensor | None]:
    """The side `.to(...)` moves to (positional str/device, device=, or another tensor's),
    None for a dtype-only conversion."""
    if kwargs.get("device") is not None:
        return side(kwargs["device"]), None
    for a in args[1:]:
        if isinstance(a, (str, torch.device)):
            return side(a), None
        if isinstance(a, torch.Tensor):
            return where(a), a
    return None, None


@dataclass
class Record:
    site: str
    op: str
    kind: str  # "device value" | "host tensor" | "unknown" | "h2d" | "no-op (on device)" | "synchronize"
    nbytes: int = 0
    shape: tuple = ()
    dtype: str = ""


@dataclass
class Probe(TorchFunctionMode):
    """Marks where tensors live and, while `active`, records reads and transfers."""

    active: bool = False
    records: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        flat, _ = tree_flatten((args, kwargs))
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        src = args[0] if args and isinstance(args[0], torch.Tensor) else None
        out_where = None
        if name in ("to", "cuda") and src is not None:
            to, _ = target_side(args, kwargs) if name == "to" else ("device", None)
            if to == "device":
                self._transfer(name, src, where(src) == "device")
            elif to == "host" and where(src) == "device":
                self._read(f"{name}(cpu)", src)  # a device-to-host copy waits for the GPU
            out_where = to or where(src)
        elif name == "copy_" and len(args) > 1 and isinstance(args[1], torch.Tensor):
            if where(args[0]) == "device":
                self._transfer(name, args[1], where(args[1]) == "device")
        elif name in FACTORY_COPIES and kwargs.get("device") is not None and side(kwargs["device"]) == "device":
            data = args[0] if args else kwargs.get("data")
            out = func(*args, **kwargs)
            self._transfer(name, out, where(data) == "device")
            mark(out, "device")
            return out
        elif name in READS or name in VALUE_SHAPED:
            if src is not None:
                self._read(name, src)
        elif name == "__getitem__" and src is not None:
            idx = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in idx):
                self._read("__getitem__[bool mask]", src)
        out = func(*args, **kwargs)
        if out is src and out_where is not None and out_where != where(src):
            # On the CPU `.to(device)` returns its input itself; on CUDA it is a new tensor.
            # An alias stands in for that copy so that the host original keeps its mark.
            out = src.view_as(src)
        if name in ("cpu", "numpy"):
            out_where = "host"
        elif out_where is None:
            kinds = {where(t) for t in tensors}
            if kwargs.get("device") is not None:
                out_where = side(kwargs["device"])
            elif "device" in kinds:
                out_where = "device"
            elif "host" in kinds or not tensors:
                out_where = "host"
        if out_where is not None:
            for o in tree_flatten(out)[0]:
                # In-place ops return their input: a host tensor updated from a device one is
                # rare, and re-marking parameters would only repeat their mark.
                mark(o, out_where, overwrite=not (o is src and where(src) is not None))
        return out

    def _transfer(self, op: str, t: torch.Tensor, on_device: bool) -> None:
        if self.active:
            kind = "no-op (on device)" if on_device else "h2d"
            self.records.append(Record(call_site(), op, kind, 0 if on_device else t.nbytes,
                                       tuple(t.shape), str(t.dtype).removeprefix("torch.")))

    def _read(self, op: str, t: torch.Tensor) -> None:
        if self.active:
            kind = {"device": "device value", "host": "host tensor"}.get(where(t), "unknown")
            self.records.append(Record(call_site(), op, kind, 0, tuple(t.shape), str(t.dtype).removeprefix("torch.")))


def mark_state(parts: Parts, overwrite: bool) -> None:
    """Parameters, buffers, gradients and optimizer state live on the device."""
    for m in (parts.model, parts.agent):
        if m is None:
            continue
        for t in list(m.parameters()) + list(m.buffers()):
            mark(t, "device", overwrite)
            mark(t.grad, "device", overwrite)
    for opt in (parts.optimizer, parts.agent_optimizer):
        if opt is None:
            continue
        for state in opt.state.values():
            for v in state.values():
                # AdamW keeps its `step` counters on the host (non-capturable): they were marked
                # "host" when created under the probe and keep that mark.
                mark(v, "device", overwrite=False)


# ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, count over `args.steps` train_step calls, return the summary."""
    if args.smoke:
        args.batch, args.clip_len, args.frame, args.steps = 2, 4, (48, 64), 1
    cfg = make_config(args)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    # The crops a GPU run computes (batched, reading nothing on the host); the CPU's own
    # default, each box's window, reads the boxes, which costs nothing where there is no GPU.
    rt: Runtime = dataclasses.replace(select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last),
                                      crop_method="matrix")
    variant = get_variant("asnet")
    classes = 101
    h, w = args.frame
    b, t = args.batch, cfg.input.clip_len
    batch = loader_batch(cfg, b, t, h, w, classes)
    parts = build_parts(cfg, variant, classes, rt)
    gen = torch.Generator().manual_seed(cfg.seed)

    real_sync = torch.cuda.synchronize
    syncs = Counter()

    def counting_sync(*a: Any, **k: Any) -> None:
        syncs[call_site()] += 1
        if torch.cuda.is_available():
            real_sync(*a, **k)

    probe = Probe()
    torch.cuda.synchronize = counting_sync
    try:
        mark_state(parts, overwrite=True)
        with probe:
            for step in range(1 + args.steps):
                for v in batch.values():
                    mark(v, "host")  # what the DataLoader hands over is in host memory
                mark_state(parts, overwrite=False)  # new gradients / optimizer state of the last step
                probe.active = step > 0
                if step == 1:
                    syncs.clear()
                train_step(parts, parts.model, parts.agent, cfg.spa, variant, cfg, rt, batch, gen, update_spa=True)
            probe.active = False
    finally:
        torch.cuda.synchronize = real_sync
        for v in batch.values():
            if isinstance(v, torch.Tensor) and hasattr(v, MARK):
                delattr(v, MARK)

    n = args.steps
    sites: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in probe.records:
        key = (r.site, r.op, r.kind)
        s = sites.setdefault(key, {"site": r.site, "op": r.op, "kind": r.kind, "calls": 0, "bytes": 0,
                                   "shape": list(r.shape), "dtype": r.dtype})
        s["calls"] += 1
        s["bytes"] += r.nbytes
    for site, c in syncs.items():
        sites[(site, "cuda.synchronize", "synchronize")] = {"site": site, "op": "cuda.synchronize",
                                                            "kind": "synchronize", "calls": c, "bytes": 0,
                                                            "shape": [], "dtype": ""}
    rows = sorted(sites.values(), key=lambda s: (s["kind"], s["site"]))
    for s in rows:
        s["per_step"] = s["calls"] / n
        s["bytes_per_step"] = s["bytes"] / n
    device_reads = sum(s["calls"] for s in rows if s["kind"] in ("device value", "synchronize"))
    unknown = sum(s["calls"] for s in rows if s["kind"] == "unknown")
    host_reads = sum(s["calls"] for s in rows if s["kind"] == "host tensor")
    h2d = sum(s["bytes"] for s in rows if s["kind"] == "h2d") / n
    clip_bytes = batch["clip"].nbytes
    crop_bytes = sum(batch[k].nbytes for k in ("x_ctx", "x_sal") if k in batch)
    s_in = cfg.input.size
    old = OLD_FLOAT_BATCHES * b * 3 * t * s_in * s_in * 4
    return {
        "config": {"preset": "paper", "batch": b, "clip_len": t, "size": s_in, "frame": [h, w],
                   "spa_train_steps": cfg.spa.train_steps, "crop_in_workers": cfg.train.crop_in_workers,
                   "arch": f"{cfg.model.arch}{cfg.model.depth} w{cfg.model.width}", "steps": n},
        "sites": rows,
        "syncs_per_step": device_reads / n,
        "unknown_reads_per_step": unknown / n,
        "host_reads_per_step": host_reads / n,
        "h2d_bytes_per_step": h2d,
        "clip_batch_bytes": clip_bytes,
        "worker_crop_bytes": crop_bytes,
        "metadata_bytes_per_step": h2d - clip_bytes - crop_bytes,
        "h2d_over_clip_batch": h2d / clip_bytes,
        "h2d_bytes_per_clip": h2d / b,
        "h2d_bytes_batch32": h2d / b * 32,
        "before_computed_bytes_per_step": old,
        "before_computed_bytes_batch32": old / b * 32,
    }


def mb(x: float) -> str:
    return f"{x / 1e6:,.2f} MB"


def report(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = [f"ASNet train_step, preset paper geometry: {c['clip_len']}x{c['size']}x{c['size']} crops from "
             f"{c['frame'][0]}x{c['frame'][1]} frames, SPA {c['spa_train_steps']} train steps, batch {c['batch']}, "
             f"{c['arch']}, crop_in_workers={c['crop_in_workers']}, {c['steps']} measured step(s)", ""]
    hdr = f"{'per step':>8}  {'kind':<18} {'op':<24} {'bytes/step':>14}  {'shape dtype':<28} call site"
    lines += [hdr, "-" * len(hdr)]
    for s in res["sites"]:
        shape = f"{tuple(s['shape'])} {s['dtype']}".strip()
        nbytes = f"{s['bytes_per_step']:,.0f}" if s["kind"] == "h2d" else ""
        lines.append(f"{s['per_step']:8.2f}  {s['kind']:<18} {s['op']:<24} {nbytes:>14}  {shape:<28} {s['site']}")
    b = c["batch"]
    lines += [
        "",
        f"host syncs per step (device-value reads + cuda.synchronize): {res['syncs_per_step']:.2f}",
        f"host-tensor reads per step (no GPU sync): {res['host_reads_per_step']:.2f}; "
        f"unclassified reads: {res['unknown_reads_per_step']:.2f}",
        f"H2D bytes per step: {res['h2d_bytes_per_step']:,.0f} ({mb(res['h2d_bytes_per_step'])}) = "
        f"clip batch {res['clip_batch_bytes']:,} + worker crops {res['worker_crop_bytes']:,} "
        f"+ metadata {res['metadata_bytes_per_step']:,.0f}",
        f"ratio to the uint8 clip batch: {res['h2d_over_clip_batch']:.4f}",
        f"per clip: {mb(res['h2d_bytes_per_clip'])}; batch 32 (bytes scale linearly with B, "
        "but for the normalisation constants): "
        f"{mb(res['h2d_bytes_batch32'])}",
        f"before (computed from shapes, {OLD_FLOAT_BATCHES} float32 crop batches: "
        f"{OLD_FLOAT_BATCHES} x B x 3 x T x S x S x 4): batch {b}: {mb(res['before_computed_bytes_per_step'])}, "
        f"batch 32: {mb(res['before_computed_bytes_batch32'])}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    print(report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
