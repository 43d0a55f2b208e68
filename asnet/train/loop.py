"""Training of one (dataset, split, variant) run: Algorithm 2 with resumable epochs.

Per iteration: the context stream gets conventional crops; the saliency stream gets SPA's
boxes (collected with the CNN fixed); the CNN takes one SGD step with SPA fixed; then SPA
takes its PPO update on the episode it just played. The episode is played once, before
the CNN step, and serves both: this saves a second T-step rollout per iteration (the
paper does not say whether SPA replays after the CNN step).

Files in `run_dir`: `state/last.pt` (resume point, rewritten atomically every epoch, and at
the step where a SIGINT/SIGTERM stops the run: then with the epoch's `partial` progress, from
which a resume continues that epoch; asnet.train.stop), `state/.lock` (the training process's
lock, asnet.train.lock), `model.pt` (final weights and metadata, written last), `dvclive/`
(per-epoch logs, written after the epoch's state and rebuilt from it on resume: equal to an
uninterrupted run's). No random stream depends on `train.workers` (see `_epoch_loader`).

Under `torchrun` (WORLD_SIZE > 1; see asnet.train.distributed) the CNN and the SPA agent
are wrapped in DistributedDataParallel. The global batch stays `train.batch_size` (each of
the W ranks takes batch_size / W clips, so hyperparameters keep their meaning) and SPA's PPO
minibatch likewise is split (spa.minibatch / W transitions per rank, gradients averaged).
Each epoch's (seed, epoch)-derived permutation is sharded by a DistributedSampler
(drop_last: every rank gets floor(N / W) videos); every rank plays the SPA episodes of its
own shard. BatchNorm is per-rank BatchNorm over batch_size / W clips, or with
train.sync_bn over the global batch (asnet.train.sync_bn); running statistics follow rank 0
(DDP's buffer broadcast, and once more before validation). Every step starts with the ranks'
agreement on it (ddp.step_plan: unreadable videos may leave a rank short or empty); PPO's
advantage moments and SPA's state statistics are all-reduced. Validation is sharded and all-reduced,
as are the training metrics, so the logged numbers, and the LR-plateau decision, are the
same on every rank and cover all of them. Rank 0 alone writes dvclive logs, `state/last.pt`
(with every rank's RNG state) and `model.pt` (the unwrapped module's weights: no `module.`
prefix); every rank resumes from the same `state/last.pt`. With WORLD_SIZE 1 none of this
runs: the single-process path is unchanged, bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from asnet.config import RESUMABLE_KEYS, Config, SPAConfig, from_dict, run_shaping
from asnet.data.clips import ClipDataset, pad_collate
from asnet.data.crops import Frames, box_iou, normalise
from asnet.data.store import StoreError, open_video
from asnet.device import Runtime, available_cores, configure_backends, select_runtime, set_threads
from asnet.faults import fault_point
from asnet.models import build_model
from asnet.models.pretrained import load_pretrained, pretrained_path
from asnet.progress import CONSOLE
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import Episode, ppo_update, run_episode, state_dim
from asnet.train import checkpoint, skips
from asnet.train import distributed as ddp
from asnet.train.first_step import apply_memory_limit, first_step_guard
from asnet.train.inputs import WorkerCrops, clip_to_frame, context_boxes, fixed_saliency_boxes
from asnet.train.lock import RunLock
from asnet.train.stop import StopRequest, TrainingInterrupted, signal_name
from asnet.train.sync_bn import convert_global_bn
from asnet.variants import Variant, get_variant

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """Everything a run trains, built the same way for training, resuming and evaluation."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    agent: ActorCritic | None
    agent_optimizer: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler | None = None  # fp16 autocast (CUDA) only
    pretrained: dict[str, Any] | None = None  # what load_pretrained loaded (path, sha256, tensors, ...)


def build_parts(cfg: Config, variant: Variant, num_classes: int, rt: Runtime) -> Parts:
    """Model (+ SPA agent) and their optimizers, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes, variant.streams)
    start = pretrained_path(cfg)
    report = load_pretrained(model, start, cfg).to_dict() if start is not None else None
    model = model.to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    t = cfg.train
    # foreach=True (CUDA's default) on every device: bit-identical to the per-parameter loop on
    # the CPU and ~25% faster for SPA's many small PPO updates.
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay,
                          foreach=True)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.plateau_factor, patience=t.plateau_patience)
    agent = agent_opt = None
    if variant.saliency == "spa":
        agent = ActorCritic(state_dim(model.feature_dim, num_classes, cfg.spa.state), cfg.spa.actions, cfg.spa.hidden,
                            cfg.spa.state_norm).to(rt.device)
        agent_opt = torch.optim.AdamW(agent.parameters(), lr=cfg.spa.lr, weight_decay=cfg.spa.weight_decay,
                                      foreach=True)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    scaler = torch.amp.GradScaler(rt.device.type) if rt.amp_dtype == torch.float16 else None
    return Parts(model, opt, sched, agent, agent_opt, scaler, report)


def split_validation(train_df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out `fraction` of each class's training videos for the plateau scheduler.

    UCF-101 and HMDB-51 have no validation list; using the test list for it (as some
    codebases do) would leak the test set into training decisions.
    """
    if fraction <= 0:
        return train_df, train_df.iloc[0:0]
    rng = np.random.default_rng(seed)
    val_idx = []
    for _, group in train_df.groupby("label", sort=True):
        k = max(1, int(round(len(group) * fraction))) if len(group) > 1 else 0
        val_idx.extend(rng.choice(group.index.to_numpy(), size=k, replace=False).tolist())
    val = train_df.loc[sorted(val_idx)]
    return train_df.drop(index=val.index), val


def stream_inputs(
    model: torch.nn.Module,
    agent: ActorCritic | None,
    variant: Variant,
    cfg: Config,
    rt: Runtime,
    batch: dict[str, Any],
    train: bool,
    gen: torch.Generator,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor | None, Episode | None]:
    """(x_ctx, x_sal, SPA episode) for a batch; x: (B, 3, T, S, S) on the device. `agent`
    plays SPA's episode (variants with saliency "spa"; None otherwise) on `model`'s features.

    A batch whose crops were drawn in the loader's workers (asnet.train.inputs.WorkerCrops:
    ``x_ctx``, or for SPA ``ctx_box``) keeps the workers' boxes and flips."""
    hs, ws = batch["height"], batch["width"]
    inp, norm = cfg.input, cfg.normalisation()
    # The clip batch crosses to the device once, as uint8; every crop is cut there.
    clip = batch.get("clip")
    frames = clip if isinstance(clip, Frames) or clip is None else Frames.of(clip, hs, ws, rt.device, rt.crop_method)
    if "x_ctx" in batch:
        flip = batch["flip"]
        x_ctx = rt.to_input(normalise(batch["x_ctx"].to(rt.device, non_blocking=True), norm))
    elif "ctx_box" in batch:  # drawn in the workers, cut here from the frames SPA needs anyway
        flip = batch["flip"]
        x_ctx = rt.to_input(frames.crop(batch["ctx_box"], inp.size, norm, flip))
    else:
        flip = (torch.rand(hs.shape[0], generator=gen) < 0.5) if (train and inp.flip) else None
        ctx = context_boxes(variant, cfg, hs, ws, batch["gt"], train, gen)
        x_ctx = rt.to_input(frames.crop(ctx, inp.size, norm, flip))
    if variant.saliency is None:
        return x_ctx, None, None
    if "x_sal" in batch:
        return x_ctx, rt.to_input(normalise(batch["x_sal"].to(rt.device, non_blocking=True), norm)), None
    episode = None
    if variant.saliency == "spa":
        assert agent is not None
        was_training = model.training
        model.eval()  # the CNN is fixed while SPA plays: no BN statistics updates
        episode = run_episode(
            model, agent, frames, hs, ws, batch["label"] if train else None, cfg.spa, inp,
            steps, deterministic=not train, autocast=rt.autocast, to_input=rt.to_input, norm=norm, gt=batch["gt"],
        )
        if was_training:
            train_mode(model, cfg)
        sal = episode.final_boxes
    else:
        sal = fixed_saliency_boxes(variant.saliency, cfg, hs, ws, gen)
    x_sal = rt.to_input(frames.crop(sal, inp.size, norm, flip))
    return x_ctx, x_sal, episode


def train_mode(model: torch.nn.Module, cfg: Config) -> torch.nn.Module:
    """`model` in training mode; with train.norm_eval its BatchNorm layers stay in eval mode
    (they normalise with the running statistics and never update them)."""
    model.train()
    if cfg.train.norm_eval:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
    return model


def cnn_step(
    parts: Parts, model: torch.nn.Module, rt: Runtime, x_ctx: torch.Tensor, x_sal: torch.Tensor | None,
    labels: torch.Tensor, weight: float = 1.0, first: bool = True, last: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step of the CNN (SPA fixed) on a batch; `model` may be the DDP wrapper.
    Returns (loss, logits); logits (B, C) in fp32.

    A micro-batch of an accumulated step (train.accum_steps) backpropagates `weight` x its
    mean loss (its share of the batch, so the gradients add up to the whole batch's mean);
    `first` clears the gradients, `last` steps the optimizer, and DDP all-reduces only then."""
    sync = model.no_sync() if (not last and isinstance(model, DistributedDataParallel)) else contextlib.nullcontext()
    with sync:
        with rt.autocast():
            logits = model(x_ctx, x_sal).float()
        loss = F.cross_entropy(logits, labels)
        if first:
            parts.optimizer.zero_grad(set_to_none=True)
        scaled = loss * weight if weight != 1.0 else loss
        if parts.scaler is not None:  # fp16 gradients underflow without loss scaling
            parts.scaler.scale(scaled).backward()
        else:
            scaled.backward()
    if last:
        if parts.scaler is not None:
            parts.scaler.step(parts.optimizer)
            parts.scaler.update()
        else:
            parts.optimizer.step()
    return loss, logits


def train_step(
    parts: Parts, train_model: torch.nn.Module, train_agent: torch.nn.Module | None, spa_cfg: SPAConfig,
    variant: Variant, cfg: Config, rt: Runtime, batch: dict[str, Any], gen: torch.Generator, update_spa: bool,
    plan: ddp.StepPlan | None = None,
) -> dict[str, torch.Tensor]:
    """One optimizer step on one (rank's) batch: stream inputs (SPA's episode with the CNN
    fixed), the CNN step in train.accum_steps micro-batches, then SPA's PPO update on the
    batch's episode (if `update_spa`). Returns sums over the batch as 0-dim float64 tensors
    on the device (loss_sum, correct, items; spa_reward, spa_loss, spa_updates; spa_iou):
    nothing here reads a value on the host, so the GPU is never made to wait.

    The inputs and SPA's episode are made for the whole batch and only the CNN's forward and
    backward are split: data, augmentation and episodes are those of accum_steps 1, and an
    accumulated run differs from it only by BatchNorm's batch statistics (none with
    train.norm_eval) and the order of float sums.

    Under torchrun `plan` (ddp.step_plan, agreed by every rank) holds each rank's usable
    clip count: a rank whose batch lost videos weighs its loss by its share of the global
    batch, every rank splits into as many micro-batches, and SPA's PPO update runs as many
    minibatches on every rank (asnet.spa.rollout.ppo_update)."""
    x_ctx, x_sal, episode = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, True, gen,
                                          cfg.spa.train_steps)
    labels = batch["label"].to(rt.device, non_blocking=True)
    b = labels.shape[0]
    zero = torch.zeros((), dtype=torch.float64, device=rt.device)
    out = {"loss_sum": zero, "correct": zero, "items": zero + b}
    accum, share = cfg.train.accum_steps, 1.0
    if plan is not None and plan.distributed:
        # The same number of forwards on every rank (a short batch would make fewer).
        accum, share = min(accum, min(plan.counts)), plan.share
    bounds = micro_batches(b, accum)
    for j, (lo, hi) in enumerate(bounds):
        xs = x_sal[lo:hi] if x_sal is not None else None
        loss, logits = cnn_step(parts, train_model, rt, x_ctx[lo:hi], xs, labels[lo:hi], weight=(hi - lo) / b * share,
                                first=j == 0, last=j == len(bounds) - 1)
        out["loss_sum"] = out["loss_sum"] + loss.detach().double() * (hi - lo)
        out["correct"] = out["correct"] + (logits.argmax(1) == labels[lo:hi]).sum()
    if episode is not None and update_spa:
        stats = ppo_update(train_agent, parts.agent_optimizer, episode, spa_cfg, gen, plan)  # type: ignore[arg-type]
        out.update(spa_reward=stats["reward"], spa_loss=stats["loss"], spa_updates=zero + 1)
    if episode is not None and _has_gt(batch):
        boxes = clip_to_frame(episode.final_boxes, batch["height"], batch["width"])
        out["spa_iou"] = box_iou(boxes, batch["gt"].to(rt.device, non_blocking=True)).sum().double()
    return out


def _has_gt(batch: dict[str, Any]) -> bool:
    """Whether the batch's clips all have actor boxes (pad_collate decides it on the host)."""
    return batch["has_gt"] if "has_gt" in batch else not bool(torch.isnan(batch["gt"]).any())


def micro_batches(batch: int, accum_steps: int) -> list[tuple[int, int]]:
    """[start, end) of the accum_steps micro-batches of a batch of `batch` clips (sizes as equal
    as they can be; a batch shrunk by skipped videos may give fewer, never an empty one)."""
    k = min(accum_steps, batch)
    edges = [i * batch // k for i in range(k + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


@torch.no_grad()
def validation_sums(parts: Parts, variant: Variant, cfg: Config, rt: Runtime, loader: DataLoader,
                    rows: list[dict] | None = None, epoch: int = 0) -> dict[str, float]:
    """Summed clip loss, correct clips and clip count over `loader` (fixed clips, test-time
    crops), and the number of videos skipped as unreadable (`skipped`; their record rows are
    added to `rows`)."""
    parts.model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    # Sums stay on the device until the end (float64: the numbers Python floats would give).
    loss_sum = torch.zeros((), dtype=torch.float64, device=rt.device)
    correct, total = torch.zeros((), dtype=torch.long, device=rt.device), 0
    n_skipped = 0
    ds = loader.dataset.dataset if isinstance(loader.dataset, Subset) else loader.dataset
    for batch in loader:
        n_skipped += _skipped(batch, "validation", rows, ds, "validation", epoch)
        if not batch["label"].numel():
            continue
        x_ctx, x_sal, _ = stream_inputs(parts.model, parts.agent, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
        with rt.autocast():
            logits = parts.model(x_ctx, x_sal).float()
        labels = batch["label"].to(rt.device, non_blocking=True)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
        correct += (logits.argmax(1) == labels).sum()
        total += labels.numel()
    return {"loss_sum": float(loss_sum), "correct": int(correct), "total": total, "skipped": n_skipped}


def validate(parts: Parts, variant: Variant, cfg: Config, rt: Runtime, loader: DataLoader) -> dict[str, float]:
    """Clip-level loss/accuracy on the held-out videos (fixed clips, test-time crops)."""
    return _val_metrics(validation_sums(parts, variant, cfg, rt, loader))


def _val_metrics(s: dict[str, float]) -> dict[str, float]:
    total = s["total"]
    out = {"val_loss": s["loss_sum"] / max(total, 1), "val_acc": s["correct"] / max(total, 1)}
    if s.get("skipped"):  # logged only when it happens, like skipped_videos
        out["val_skipped_videos"] = int(s["skipped"])
    return out


def _skipped(batch: dict[str, Any], where: str, rows: list[dict] | None = None, ds: ClipDataset | None = None,
             kind: str = "train", epoch: int = 0) -> int:
    """Log the videos a batch left out because their files are unreadable; their number. With
    `rows`, each gets its record row (asnet.train.skips; `ds` gives its file, `kind` is
    train or validation)."""
    skipped = batch.get("skipped", [])
    for video, reason in skipped:
        log.warning("%s: skipped video %s: %s", where, video, reason)
        if rows is not None:
            file = ds.files[ds.videos.index(video)] if ds is not None and video in ds.videos else ""
            rows.append(skips.skip_row(video, kind, epoch, reason, file))
    return len(skipped)


def _check_val_skipped(n_skipped: int, n_val: int, cfg: Config, rows: list[dict], when: str,
                       info: ddp.DistInfo | None = None) -> None:
    """Stop the run (StoreError, one line naming the files and the fix) when more than
    `train.max_val_skipped` of the `n_val` validation videos are unreadable: the LR plateau
    would be decided on what is left. Every rank raises alike (`n_skipped` is all-reduced);
    with a distributed `info` the ranks' rows are gathered to name every file."""
    if not n_skipped or n_skipped <= cfg.train.max_val_skipped * n_val:
        return
    if info is not None and info.enabled:
        rows = [r for part in ddp.all_gather_objects(rows, info) for r in part]  # type: ignore[union-attr]
    files = sorted({r["file"] or r["video"] for r in rows if r["where"] == "validation"})
    reason = next((r["reason"] for r in rows if r["where"] == "validation"), "")
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    raise StoreError(
        f"{when}: {n_skipped} of {n_val} validation videos are unreadable ({shown}; first: {reason.split('; ')[0]}), "
        f"more than train.max_val_skipped={cfg.train.max_val_skipped:g} allows; re-extract them (delete each file "
        f"and its marker in frames_chunks/.done/, then `asnet extract`) or raise train.max_val_skipped"
    )


def _precheck_validation(ds: ClipDataset, cfg: Config) -> None:
    """Open every validation video's file before the first epoch (a header and size check,
    no decoding): a truncated file stops the run now, not after the first epoch's training."""
    rows = []
    for video, file in zip(ds.videos, ds.files, strict=True):
        try:
            open_video(Path(file))
        except StoreError as exc:
            rows.append(skips.skip_row(video, "validation", 0, str(exc), file))
    # Every rank opens every file: the same count everywhere, no collective needed.
    _check_val_skipped(len(rows), len(ds), cfg, rows, "before training")


def _rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG state: the CPU generator's and, on a CUDA machine, the current
    device's only (a process draws on its own GPU; a resume may see fewer or other GPUs)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore `_rng_state`'s state. A "cuda" entry with one row per device (every visible
    device's state) gives the current device its row, or the last row when this machine
    has more devices than the one that saved it."""
    # RNG states must be CPU byte tensors; checkpoints are loaded onto the run's device.
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"].cpu()
        if cuda.dim() == 2:
            cuda = cuda[min(torch.cuda.current_device(), cuda.shape[0] - 1)]
        torch.cuda.set_rng_state(cuda.clone())


def _diff_keys(a: Any, b: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), prefix + (k,))
        return out
    return [] if a == b else [prefix]


def _check_resumable(ck: dict[str, Any], cfg: Config, path: Path) -> None:
    """Refuse to resume from checkpoint `ck` (at `path`) a run that `cfg` would train otherwise.

    What counts is config.run_shaping (the keys the train rule's digest covers, so a config
    edit that retrains nothing never blocks a resume), and every dataset defined in both
    configs (the run's own among them) must be defined alike; adding a dataset, a split, a
    variant or a table to the config must not stop an interrupted run of another one from
    resuming. train.epochs may grow, not shrink below the epochs already trained."""
    saved = ck["config"]
    old, new = run_shaping(saved), run_shaping(cfg.to_dict())
    old_ds = {d["name"]: d for d in saved.get("datasets", [])}
    new_ds = {d["name"]: d for d in cfg.to_dict()["datasets"]}
    for name in sorted(set(old_ds) & set(new_ds)):
        old[f"datasets[{name}]"], new[f"datasets[{name}]"] = old_ds[name], new_ds[name]
    diffs = [".".join(map(str, d)) for d in _diff_keys(old, new) if d not in RESUMABLE_KEYS]
    if diffs:
        raise ValueError(
            f"{path} was written by a run with a different configuration ({', '.join(diffs[:8])}); "
            f"delete {path.parent.parent} to train from scratch, or restore the old configuration to resume"
        )
    trained = int(ck["epoch"]) + 1
    if trained > cfg.train.epochs:
        raise ValueError(
            f"{path} holds a run trained for {trained} epochs, but train.epochs is {cfg.train.epochs}; "
            f"delete {path.parent.parent} to train from scratch, or set train.epochs >= {trained}"
        )


def _check_actor_boxes(train_df: pd.DataFrame, frames_dir: Path) -> None:
    """spa.reward=oracle_iou rewards overlap with the actor: every training video needs its
    ground-truth boxes (`<video>.boxes.npy`, written for the synthetic set only)."""
    missing = [v for v in train_df["video"].astype(str) if not (Path(frames_dir) / f"{v}.boxes.npy").exists()]
    if missing:
        raise ValueError(
            f"spa.reward=oracle_iou needs ground-truth actor boxes, but {len(missing)} training videos have none in "
            f"{frames_dir} (e.g. {missing[0]}.boxes.npy): only synthetic datasets have them; use spa.reward=loss_sign"
        )


def _log_epoch(live: Any, metrics: dict[str, float]) -> None:
    for k, v in metrics.items():
        if k != "epoch":
            live.log_metric(k, v)
    live.next_step()


def _open_live(run_dir: Path, history: list[dict[str, float]]):
    """dvclive's logs, rebuilt from the epochs `state/last.pt` holds.

    A resumed run does not trust what is on disk: a kill after an epoch's state was saved
    and before its log was written would lose that epoch, and dvclive's own resume repeats
    step 0 after a run killed in its first epoch. Replaying the saved history gives the
    files an uninterrupted run writes (dvclive writes no timestamps by default)."""
    from dvclive import Live

    # Under Snakemake/DVC: never touch dvc.yaml, never create DVC experiments.
    live = Live(str(run_dir / "dvclive"), save_dvc_exp=False, dvcyaml=None, resume=False, report=None)
    for metrics in history:
        _log_epoch(live, metrics)
    return live


def _discard_stale_resume(run_dir: Path, state_path: Path) -> None:
    """Delete the resume point (and the skip record) of a run that skipped videos whose store
    files changed since (repaired): resuming would finish a run trained without them, so it
    trains from scratch instead (asnet.train.skips)."""
    stale = skips.stale_videos(run_dir)
    if not stale:
        return
    if state_path.exists():
        log.warning("run %s skipped %d video(s) whose store files changed since (%s): training from scratch, "
                    "not resuming from %s", run_dir, len(stale), ", ".join(stale[:3]), state_path)
        state_path.unlink()
    skips.record_path(run_dir).unlink(missing_ok=True)


def _rank_seed(*parts: int) -> int:
    """A 32-bit seed derived from a tuple of non-negative ints (independent streams per tuple)."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1)[0])


def _stack_rng(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Every rank's RNG state, stacked on a leading rank axis (loads with weights_only=True)."""
    return {k: torch.stack([s[k].cpu() for s in states]) for k in states[0]}


def _restore_rank_rng(ck: dict[str, Any], cfg: Config, info: ddp.DistInfo, start_epoch: int) -> None:
    """Give this rank the RNG state it had when `ck` was written (rank 0's is already set)."""
    ranks = ck.get("rng_ranks")
    if ranks is not None and int(ck.get("world_size", 1)) == info.world_size:
        # clone(): torch.set_rng_state crashes (SIGSEGV, torch 2.13) on a view with a storage offset.
        _set_rng_state({k: v[info.rank].clone() for k, v in ranks.items()})
    elif info.rank > 0:
        torch.manual_seed(_rank_seed(cfg.seed, 2, info.rank, start_epoch))


def _threads(requested: int) -> int:
    """Intra-op threads per process: under torchrun the job's cores are shared by its ranks."""
    per_rank = max(1, available_cores() // ddp.local_world_size())
    return per_rank if requested <= 0 else min(requested, per_rank)


def train_run(
    cfg: Config,
    manifest_path: Path,
    frames_dir: Path,
    run_dir: Path,
    variant_name: str,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train one run to completion (resuming from `run_dir/state/last.pt` if present).

    Returns the path of `run_dir/model.pt`. `stop_after_epoch` ends the process's work
    early (used to test resuming without killing); the run is then incomplete. Under
    torchrun (WORLD_SIZE > 1) this is one rank of a DistributedDataParallel job.
    """
    threads = set_threads(_threads(cfg.train.threads) if ddp.launched_by_torchrun() else cfg.train.threads)
    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    info = ddp.init_from_env(rt.device)
    try:
        if info.device is not None:
            rt = dataclasses.replace(rt, device=info.device)
        configure_backends(rt, cfg.train.deterministic)  # before the first CUDA matmul (cuBLAS workspace)
        apply_memory_limit(cfg, rt)
        # One process (rank 0 of a torchrun job) trains a run folder at a time.
        with RunLock(run_dir) if info.is_main else contextlib.nullcontext():
            if info.is_main:  # what a save killed with -9 left; nothing else can be saving here now
                checkpoint.remove_temp_files(run_dir, run_dir / "state")
            stop = StopRequest.for_job(info.enabled, info.backend)
            with stop.handling():
                return _train(cfg, manifest_path, frames_dir, run_dir, variant_name, progress, stop_after_epoch, rt,
                              threads, info, stop)
    finally:
        ddp.cleanup(info)


@dataclass
class Loaders:
    """The run's data: datasets, the validation loader, and under torchrun the sampler that
    shards each epoch's permutation (`rank_batch` clips per process and step)."""

    train_ds: ClipDataset
    val_ds: ClipDataset
    val_loader: DataLoader
    rank_batch: int
    sampler: DistributedSampler | None
    num_classes: int


def _train(
    cfg: Config,
    manifest_path: Path,
    frames_dir: Path,
    run_dir: Path,
    variant_name: str,
    progress: bool,
    stop_after_epoch: int | None,
    rt: Runtime,
    threads: int,
    info: ddp.DistInfo,
    stop: StopRequest,
) -> Path:
    variant = get_variant(variant_name)
    world = info.world_size
    if info.enabled and cfg.train.batch_size % world:
        raise ValueError(
            f"train.batch_size {cfg.train.batch_size} is the global batch and must be divisible by the "
            f"{world} processes (each takes batch_size / {world})"
        )
    manifest = pd.read_csv(manifest_path)
    num_classes = int(manifest["label"].max()) + 1
    train_df, val_df = split_validation(
        manifest[manifest["subset"] == "train"].reset_index(drop=True), cfg.train.val_fraction, cfg.seed
    )
    if variant.saliency == "spa" and cfg.spa.reward == "oracle_iou":
        _check_actor_boxes(train_df, frames_dir)
    parts = build_parts(cfg, variant, num_classes, rt)
    state_path = run_dir / "state" / "last.pt"
    if info.is_main:
        _discard_stale_resume(run_dir, state_path)
    ddp.barrier(info)  # no rank resumes from a resume point rank 0 is discarding
    start_epoch, history, partial = _resume(parts, cfg, state_path, run_dir, rt, info)
    data = _loaders(cfg, variant, train_df, val_df, frames_dir, info, rt, num_classes)
    _precheck_validation(data.val_ds, cfg)
    record = skips.SkipRecord.resume(run_dir, start_epoch) if info.is_main else None
    train_model, train_agent, spa_cfg = _wrap_ddp(parts, cfg, rt, info)
    live = _open_live(run_dir, history) if info.is_main else None
    sha = checkpoint.git_sha()
    if info.is_main:
        log.info(
            "run %s: %d train / %d val videos, %d threads, %s%s", run_dir, len(data.train_ds), len(data.val_ds),
            threads, rt, f", {world} processes x batch {data.rank_batch} ({info.backend})" if info.enabled else "",
        )
        p = parts.pretrained
        log.info("run %s starts from %s; input normalisation %s", run_dir,
                 f"{p['path']} ({p['release']}, {p['tensors_loaded']} backbone tensors, sha256 {p['sha256']})"
                 if p else "scratch", cfg.normalisation().to_dict())

    last = cfg.train.epochs - 1
    for epoch in range(start_epoch, cfg.train.epochs):
        out = _train_epoch(parts, train_model, train_agent, spa_cfg, variant, cfg, rt, data, epoch, run_dir,
                           progress, info, stop, first_epoch=start_epoch,
                           partial=partial if epoch == start_epoch else None, record=record)
        if isinstance(out, EpochCut):
            with stop.saving():
                _save_state(parts, cfg, epoch - 1, history, sha, state_path, info, cut=out)
            ddp.barrier(info)
            raise TrainingInterrupted(stop.signum or 0, (
                f"interrupted ({signal_name(stop.signum or 0)}) at epoch {epoch} (of 0-{last}) step {out.step} "
                f"of {out.steps}; state saved in {state_path}; run the same command to resume"))
        metrics = out
        history.append(metrics)
        if info.is_main:
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in metrics.items()}, extra=CONSOLE)
        if record is not None:
            record.write()  # before the resume point: a resumed run drops the rows of epochs it replays
        with stop.saving():
            _save_state(parts, cfg, epoch, history, sha, state_path, info)
        if live is not None:
            # Logged after the state is saved: what dvclive shows is always resumable, and
            # a kill in between is repaired by _open_live's replay.
            _log_epoch(live, metrics)
            fault_point("train.epoch_logged")
        ddp.barrier(info)  # no rank moves on (or exits) before the checkpoint is on disk
        if stop.requested():  # a signal in validation or the save: the epoch is complete and saved
            raise TrainingInterrupted(stop.signum or 0, (
                f"interrupted ({signal_name(stop.signum or 0)}) after epoch {epoch} (of 0-{last}); state saved in "
                f"{state_path}; run the same command to resume"))
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            if live is not None:
                live.end()
            return run_dir / "model.pt"
    if live is not None:
        live.end()

    if info.is_main:
        with stop.saving():
            _save_final(parts, cfg, variant, num_classes, history, sha, run_dir / "model.pt")
    ddp.barrier(info)
    return run_dir / "model.pt"


def _resume(parts: Parts, cfg: Config, state_path: Path, run_dir: Path, rt: Runtime,
            info: ddp.DistInfo) -> tuple[int, list[dict[str, float]], dict[str, Any] | None]:
    """Restore `parts`, the RNG and the history from `state_path` if it exists: (first epoch
    to train, history of the epochs trained, this rank's part of an interrupted epoch or None)."""
    world, rank = info.world_size, info.rank
    start_epoch, history, partial = 0, [], None
    if state_path.exists():
        ck = checkpoint.load(state_path, rt.device)
        _check_resumable(ck, cfg, state_path)
        parts.model.load_state_dict(ck["model"])
        parts.optimizer.load_state_dict(ck["optimizer"])
        parts.scheduler.load_state_dict(ck["scheduler"])
        if parts.agent is not None:
            parts.agent.load_state_dict(ck["agent"])
            parts.agent_optimizer.load_state_dict(ck["agent_optimizer"])
        if parts.scaler is not None and "scaler" in ck:
            parts.scaler.load_state_dict(ck["scaler"])
        _set_rng_state(ck["rng"])
        start_epoch, history = int(ck["epoch"]) + 1, list(ck["history"])
        if info.enabled:
            _restore_rank_rng(ck, cfg, info, start_epoch)
        saved_world = int(ck.get("world_size", 1))
        if "partial" in ck:
            partial = _rank_partial(ck["partial"], saved_world, info, state_path)
        if saved_world != world and info.is_main:
            log.warning(
                "%s was written by %d process(es), resuming with %d: the data shards and per-process "
                "batches change, so the run will not replay an uninterrupted %d-process run exactly",
                state_path, saved_world, world, saved_world,
            )
        if info.is_main:
            log.info("resuming %s from epoch %d%s", run_dir, start_epoch,
                     f" step {partial['step']}" if partial is not None else "")
    elif info.enabled and rank > 0:
        # Rank 0 keeps the single-process RNG stream; the others sample SPA actions independently.
        torch.manual_seed(_rank_seed(cfg.seed, 2, rank, 0))
    return start_epoch, history, partial


@dataclass
class EpochCut:
    """Where an interrupted epoch stopped (a step boundary): `step` of its `steps` done, and
    what its next step needs to go on as if uninterrupted: the epoch's running sums (on the
    device), the videos it skipped (their record rows, asnet.train.skips), its augmentation
    generator's state and the process's
    own buffers (under torchrun a rank's BatchNorm statistics are its own between DDP's
    broadcasts, and SPA's episodes read them)."""

    step: int
    steps: int
    sums: dict[str, torch.Tensor]
    gen: torch.Tensor
    buffers: dict[str, torch.Tensor]
    rows: list[dict]


def _buffers(parts: Parts) -> dict[str, torch.Tensor]:
    """The model's and the agent's buffers (BatchNorm, SPA state statistics), keyed by module."""
    mods = {"model": parts.model, "agent": parts.agent}
    return {f"{m}.{n}": b for m, mod in mods.items() if mod is not None for n, b in mod.named_buffers()}


def _partial_state(epoch: int, cuts: list[EpochCut]) -> dict[str, Any]:
    """The `partial` entry of state/last.pt: every rank's EpochCut, stacked on a rank axis."""
    return {
        "epoch": epoch,
        "step": cuts[0].step,
        "sums": {k: torch.stack([c.sums[k].cpu() for c in cuts]) for k in cuts[0].sums},
        "gen": torch.stack([c.gen for c in cuts]),
        "buffers": {k: torch.stack([c.buffers[k].cpu() for c in cuts]) for k in cuts[0].buffers},
        "skip_rows": [c.rows for c in cuts],
    }


def _rank_partial(saved: dict[str, Any], saved_world: int, info: ddp.DistInfo, path: Path) -> dict[str, Any]:
    """This rank's part of a state saved mid-epoch (`_partial_state`)."""
    if saved_world != info.world_size:
        raise ValueError(
            f"{path} was saved in the middle of epoch {int(saved['epoch'])} by {saved_world} process(es); it resumes "
            f"only with as many: set train.nproc_per_node {saved_world} (or delete {path.parent.parent} to start over)"
        )
    r = info.rank
    # clone(): each rank's row as a tensor of its own (RNG states must not be views; see _restore_rank_rng).
    return {"epoch": int(saved["epoch"]), "step": int(saved["step"]),
            "sums": {k: v[r].clone() for k, v in saved["sums"].items()}, "gen": saved["gen"][r].cpu().clone(),
            "buffers": {k: v[r] for k, v in saved["buffers"].items()},
            "skip_rows": saved["skip_rows"][r]}


def _loaders(cfg: Config, variant: Variant, train_df: pd.DataFrame, val_df: pd.DataFrame, frames_dir: Path,
             info: ddp.DistInfo, rt: Runtime, num_classes: int) -> Loaders:
    """Training and validation datasets, the validation loader and (under torchrun) the sampler.

    The validation loader decodes in train.workers workers, kept alive across epochs (its
    clips are fixed); batches land in pinned memory on CUDA, so their copy is asynchronous."""
    world, rank = info.world_size, info.rank
    crops = WorkerCrops.of(variant, cfg) if cfg.train.crop_in_workers else None
    train_ds = ClipDataset(train_df, frames_dir, cfg.input.clip_len, seed=cfg.seed, crops=crops)
    val_ds = ClipDataset(val_df, frames_dir, cfg.input.clip_len, seed=cfg.seed + 1)
    val_ds.set_epoch(0)
    # Its own generator for the workers' base seed, drawn when an iterator starts: a persistent
    # iterator draws once, a fresh one every epoch; the global draw of _validation_draw stands in.
    val_opts = dict(batch_size=cfg.train.batch_size, collate_fn=pad_collate, num_workers=cfg.train.workers,
                    persistent_workers=cfg.train.workers > 0, pin_memory=rt.device.type == "cuda",
                    generator=torch.Generator().manual_seed(_rank_seed(cfg.seed, 4, rank)))
    if not info.enabled:
        val_loader = DataLoader(val_ds, **val_opts)
        rank_batch, sampler = cfg.train.batch_size, None
    else:
        if len(train_ds) < world:
            raise ValueError(f"{len(train_ds)} training videos cannot be shared by {world} processes")
        rank_batch = cfg.train.batch_size // world
        # The (seed, epoch)-derived permutation, sharded; drop_last: floor(N / W) videos per rank.
        sampler = DistributedSampler(
            train_ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed * 100_003, drop_last=True
        )
        val_shard = Subset(val_ds, list(range(rank, len(val_ds), world)))
        val_loader = DataLoader(val_shard, **val_opts)
    return Loaders(train_ds, val_ds, val_loader, rank_batch, sampler, num_classes)


def _epoch_loader(data: Loaders, cfg: Config, epoch: int, rank: int, rt: Runtime,
                  start_step: int = 0) -> tuple[DataLoader, torch.Generator, int]:
    """One epoch's training loader from step `start_step` on, the generator of its
    augmentation and the epoch's number of steps.

    The epoch's order is drawn here, not by the loader: the loader's iterator would draw the
    shuffle's end-of-epoch tail from the same generator as the augmentation, at a moment that
    depends on how far its workers prefetch (train.workers). The draws are those the loader
    made with 0 workers (its workers' base seed, then the permutation), so the augmentation
    stream is that of workers 0 for every worker count. A new loader per epoch, so its workers
    see the epoch's `set_epoch` (persistent workers would keep the dataset copy of the first
    epoch); batches land in pinned memory on CUDA."""
    pin = rt.device.type == "cuda"
    train_ds, sampler, rank_batch = data.train_ds, data.sampler, data.rank_batch
    # Data order and augmentation derive from (seed, epoch) only: a resumed run replays them.
    train_ds.set_epoch(epoch)
    if sampler is None:
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.empty((), dtype=torch.int64).random_(generator=gen)  # the workers' base seed of a loader
        order = torch.randperm(len(train_ds), generator=gen).tolist()
        batch = cfg.train.batch_size
        # A last batch of one sample would break BatchNorm's training statistics.
        drop_last = len(train_ds) > batch
    else:
        # Order from (seed, epoch) via the sampler; augmentation from (seed, epoch, rank).
        gen = torch.Generator().manual_seed(_rank_seed(cfg.seed, 1, epoch, rank))
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        sampler.set_epoch(epoch)
        order, batch = list(sampler), rank_batch
        drop_last = len(sampler) > rank_batch  # equal shard sizes: every rank runs as many steps
    steps = len(order) // batch if drop_last else -(-len(order) // batch)
    loader = DataLoader(
        train_ds, batch_size=batch, sampler=order[start_step * batch:], collate_fn=pad_collate,
        num_workers=cfg.train.workers, pin_memory=pin, drop_last=drop_last,
        # Only the workers' base seed (unused: every item seeds its own draws) comes from it.
        generator=torch.Generator().manual_seed(_rank_seed(cfg.seed, 3, epoch, rank)),
    )
    return loader, gen, steps


def _validation_draw() -> None:
    """The one draw of the global RNG that a fresh validation iterator made with 0 workers,
    made for every worker count (SPA samples its actions from the global RNG afterwards)."""
    torch.empty((), dtype=torch.int64).random_()


def _wrap_ddp(parts: Parts, cfg: Config, rt: Runtime,
              info: ddp.DistInfo) -> tuple[torch.nn.Module, torch.nn.Module | None, SPAConfig]:
    """The modules the epochs train (DDP wrappers under torchrun) and SPA's per-rank settings."""
    if not info.enabled:
        return parts.model, parts.agent, cfg.spa
    world = info.world_size
    spa_cfg = dataclasses.replace(cfg.spa, minibatch=max(1, cfg.spa.minibatch // world))
    if cfg.train.sync_bn:  # BatchNorm over the global batch (same parameters and buffers)
        convert_global_bn(parts.model)
    device_ids = [rt.device.index] if rt.device.type == "cuda" else None
    train_model = DistributedDataParallel(parts.model, device_ids=device_ids)
    train_agent = DistributedDataParallel(parts.agent, device_ids=device_ids) if parts.agent is not None else None
    return train_model, train_agent, spa_cfg


EPOCH_SUMS = ("loss_sum", "correct", "items", "spa_reward", "spa_loss", "spa_updates", "spa_iou")  # train_step's
PROGRESS_EVERY = 20  # steps between progress-bar updates of the running loss


def _train_epoch(parts: Parts, train_model: torch.nn.Module, train_agent: torch.nn.Module | None,
                 spa_cfg: SPAConfig, variant: Variant, cfg: Config, rt: Runtime, data: Loaders, epoch: int,
                 run_dir: Path, progress: bool, info: ddp.DistInfo, stop: StopRequest, first_epoch: int = 0,
                 partial: dict[str, Any] | None = None,
                 record: skips.SkipRecord | None = None) -> dict[str, float] | EpochCut:
    """One epoch: CNN and SPA steps over the training loader, then validation and the LR
    plateau step. Returns the epoch's metrics (all-reduced under torchrun), or where it
    stopped when a stop was requested (`stop`, looked at after every step). `partial`
    continues an epoch stopped so (`_rank_partial`). The videos skipped as unreadable go to
    `record` (every rank's, on rank 0). More unreadable validation videos than
    train.max_val_skipped allows stop the run (StoreError) before the plateau step."""
    start = partial["step"] if partial is not None else 0
    loader, gen, steps = _epoch_loader(data, cfg, epoch, info.rank, rt, start)
    train_mode(train_model, cfg)
    acc = {k: torch.zeros((), dtype=torch.float64, device=rt.device) for k in EPOCH_SUMS}
    n_skipped = 0
    rows: list[dict] = []
    if partial is not None:
        gen.set_state(partial["gen"])
        acc = {k: partial["sums"][k].to(rt.device) for k in EPOCH_SUMS}
        rows = list(partial["skip_rows"])
        n_skipped = len(rows)  # one row per training video skipped so far this epoch
        with torch.no_grad():
            for k, b in _buffers(parts).items():
                b.copy_(partial["buffers"][k])
    bar = tqdm(loader, desc=f"{run_dir.name} epoch {epoch + 1}/{cfg.train.epochs}",
               disable=not (progress and info.is_main), leave=False, initial=start, total=steps)
    for it, batch in enumerate(bar, start=start):
        # An unreadable store file costs its video this epoch, not the run (asnet.data.clips).
        n_skipped += _skipped(batch, f"epoch {epoch}", rows, data.train_ds, "train", epoch)
        # Every rank agrees on the step (a collective, called at every step): a rank left
        # without a clip makes every rank skip it, or its collectives would go unmatched.
        plan = ddp.step_plan(int(batch["label"].numel()), info)
        if plan.distributed and not plan.run and info.is_main:
            log.warning("epoch %d step %d: a process's batch lost all its videos (unreadable), so no process trains "
                        "this step (%d readable clips unused)", epoch, it, sum(plan.counts))
        if plan.run:
            with first_step_guard(cfg, variant, data.num_classes, rt, run_dir,
                                  it - start if epoch == first_epoch else None):
                step = train_step(parts, train_model, train_agent, spa_cfg, variant, cfg, rt, batch, gen,
                                  update_spa=it % cfg.spa.update_every == 0, plan=plan)
            for k, v in step.items():
                acc[k] += v
            if bar.disable is False and it % PROGRESS_EVERY == 0:  # a host read: not every step
                bar.set_postfix(loss=f"{float(acc['loss_sum'] / acc['items']):.3f}")
        fault_point("train.step_done")
        if it + 1 < steps and stop.requested():  # after the last step the epoch ends and is saved whole
            bar.close()
            return EpochCut(it + 1, steps, acc, gen.get_state(),
                            {k: b.detach().cpu().clone() for k, b in _buffers(parts).items()}, rows)
    # One read of the epoch's sums (the steps never waited for the GPU).
    values = {k: float(v) for k, v in acc.items()}
    n_items, n_spa = int(values.pop("items")), int(values.pop("spa_updates"))
    sums = {"train_loss": values["loss_sum"], "train_acc": values["correct"], "spa_reward": values["spa_reward"],
            "spa_loss": values["spa_loss"], "spa_iou": values["spa_iou"]}
    if info.enabled:  # metrics over all ranks: sums and counts, then the same ratios everywhere
        total = ddp.all_reduce_sums({**sums, "n_items": n_items, "n_spa": n_spa, "n_skipped": n_skipped}, info)
        n_items, n_spa, n_skipped = int(total.pop("n_items")), int(total.pop("n_spa")), int(total.pop("n_skipped"))
        sums = total
    metrics = {
        "epoch": epoch,
        "lr": parts.optimizer.param_groups[0]["lr"],
        "train_loss": sums["train_loss"] / max(n_items, 1),
        "train_acc": sums["train_acc"] / max(n_items, 1),
    }
    if n_spa:
        metrics["spa_reward"] = sums["spa_reward"] / n_spa
        metrics["spa_loss"] = sums["spa_loss"] / n_spa
    if sums["spa_iou"]:
        # Diagnostic on synthetic data only: SPA's final box vs the actor's box.
        metrics["spa_iou"] = sums["spa_iou"] / max(n_items, 1)
    if n_skipped:  # logged only when it happens: a clean run's logs keep their columns
        metrics["skipped_videos"] = n_skipped
    if len(data.val_ds):
        if info.is_main:  # validation has no bar: this line says where a long epoch is
            log.info("validating epoch %d (of 0-%d) on %d videos; train loss %.4f", epoch, cfg.train.epochs - 1,
                     len(data.val_ds), metrics["train_loss"], extra=CONSOLE)
        _validation_draw()
        if info.enabled:
            ddp.broadcast_buffers(parts.model, info)  # every rank validates rank 0's (saved) model
        val = ddp.all_reduce_sums(validation_sums(parts, variant, cfg, rt, data.val_loader, rows, epoch), info)
        _check_val_skipped(int(val["skipped"]), len(data.val_ds), cfg, rows, f"epoch {epoch}", info)
        metrics.update(_val_metrics(val))
        parts.scheduler.step(metrics["val_loss"])  # all-reduced: the same decision on every rank
    else:
        parts.scheduler.step(metrics["train_loss"])
    if info.enabled:  # every rank's skips, for rank 0's record
        rows = [r for part in ddp.all_gather_objects(rows, info) for r in part]  # type: ignore[union-attr]
    if record is not None and info.is_main:
        record.add(rows)
    return metrics


def _save_state(parts: Parts, cfg: Config, epoch: int, history: list[dict[str, float]], sha: str,
                state_path: Path, info: ddp.DistInfo, cut: EpochCut | None = None) -> None:
    """The resume point after `epoch` (-1: none yet), or, with `cut`, in the middle of epoch
    `epoch + 1`: state/last.pt (rank 0 writes it, with every rank's RNG and cut)."""
    rng = _rng_state()
    rng_ranks = ddp.all_gather_objects(rng, info) if info.enabled else None
    if cut is not None:  # the sums leave the device once, at the cut (a rank's are its own)
        cut = dataclasses.replace(cut, sums={k: v.cpu() for k, v in cut.sums.items()})
        cuts = ddp.all_gather_objects(cut, info) if info.enabled else [cut]
    if info.is_main:
        state = {
            "epoch": epoch,
            "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "rng": rng,
            "history": history,
            "config": cfg.to_dict(),
            "git_sha": sha,
        }
        if parts.scaler is not None:
            state["scaler"] = parts.scaler.state_dict()
        if parts.agent is not None:
            state["agent"] = parts.agent.state_dict()
            state["agent_optimizer"] = parts.agent_optimizer.state_dict()
        if rng_ranks is not None:
            state["world_size"] = info.world_size
            state["rng_ranks"] = _stack_rng(rng_ranks)  # type: ignore[arg-type]
        if cut is not None:
            state["partial"] = _partial_state(epoch + 1, cuts)  # type: ignore[arg-type]
        checkpoint.save_atomic(state, state_path)
        fault_point("train.state_saved")


def _save_final(parts: Parts, cfg: Config, variant: Variant, num_classes: int, history: list[dict[str, float]],
                sha: str, path: Path) -> None:
    """model.pt: final weights and what they are (rank 0 only)."""
    final = {
        "model": parts.model.state_dict(),  # the unwrapped module: no DDP "module." prefix
        "agent": parts.agent.state_dict() if parts.agent is not None else None,
        "variant": variant.name,
        "num_classes": num_classes,
        "history": history,
        "config": cfg.to_dict(),
        "git_sha": sha,
        # Provenance of the starting weights and the normalisation they were trained with.
        "pretrained": parts.pretrained,
        "normalisation": cfg.normalisation().to_dict(),
    }
    checkpoint.save_atomic(final, path)


def load_trained(path: Path, device: str | torch.device = "cpu") -> tuple[Config, Variant, torch.nn.Module, ActorCritic | None]:
    """Rebuild a trained model (and SPA agent) from `model.pt`, loaded with weights_only=True."""
    return rebuild_trained(checkpoint.load(path, device), device)


def rebuild_trained(ck: dict[str, Any], device: str | torch.device = "cpu") -> tuple[Config, Variant, torch.nn.Module, ActorCritic | None]:
    """(config, variant, model, agent) of an already loaded `model.pt` dict."""
    cfg = from_dict(ck["config"])
    variant = get_variant(ck["variant"])
    model = build_model(cfg.model, int(ck["num_classes"]), variant.streams)
    # Runs saved before the head interface kept DenseNet's unused Kinetics classifier.
    state = {k: v for k, v in ck["model"].items() if not k.startswith(f"backbone.{model.backbone.head_name}.")}
    model.load_state_dict(state)
    agent = None
    if ck.get("agent") is not None:
        agent = ActorCritic(
            state_dim(model.feature_dim, int(ck["num_classes"]), cfg.spa.state), cfg.spa.actions, cfg.spa.hidden,
            cfg.spa.state_norm,
        )
        agent.load_state_dict(ck["agent"])
    return cfg, variant, model.to(device).eval(), agent.to(device).eval() if agent is not None else None
