"""Training of one (dataset, split, variant) run: Algorithm 2 with resumable epochs.

Per iteration: the context stream gets conventional crops; the saliency stream gets SPA's
boxes (collected with the CNN fixed); the CNN takes one SGD step with SPA fixed; then SPA
takes its PPO update on the episode it just played. The episode is played once, before
the CNN step, and serves both: this saves a second T-step rollout per iteration (the
paper does not say whether SPA replays after the CNN step).

Files in `run_dir`: `state/last.pt` (resume point, rewritten atomically every epoch),
`model.pt` (final weights and metadata, written last), `dvclive/` (per-epoch logs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from asnet.config import Config, from_dict
from asnet.data.clips import ClipDataset, pad_collate
from asnet.data.crops import box_iou, crop_resize
from asnet.device import Runtime, select_runtime, set_threads
from asnet.models import build_model
from asnet.models.pretrained import load_pretrained
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import Episode, ppo_update, run_episode, state_dim
from asnet.train import checkpoint
from asnet.train.inputs import clip_to_frame, context_boxes, fixed_saliency_boxes
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


def build_parts(cfg: Config, variant: Variant, num_classes: int, rt: Runtime) -> Parts:
    """Model (+ SPA agent) and their optimizers, initialised from cfg.seed."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes, variant.streams)
    if cfg.model.pretrained:
        load_pretrained(model, cfg.model.pretrained)
    model = model.to(rt.device)
    if rt.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    t = cfg.train
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.plateau_factor, patience=t.plateau_patience)
    agent = agent_opt = None
    if variant.saliency == "spa":
        agent = ActorCritic(state_dim(model.feature_dim, num_classes, cfg.spa.state), cfg.spa.actions, cfg.spa.hidden).to(rt.device)
        agent_opt = torch.optim.AdamW(agent.parameters(), lr=cfg.spa.lr, weight_decay=cfg.spa.weight_decay)
    # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
    scaler = torch.amp.GradScaler(rt.device.type) if rt.amp_dtype == torch.float16 else None
    return Parts(model, opt, sched, agent, agent_opt, scaler)


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
    parts: Parts,
    variant: Variant,
    cfg: Config,
    rt: Runtime,
    batch: dict[str, Any],
    train: bool,
    gen: torch.Generator,
    steps: int,
) -> tuple[torch.Tensor, torch.Tensor | None, Episode | None]:
    """(x_ctx, x_sal, SPA episode) for a batch; x: (B, 3, T, S, S) on the device."""
    clips, hs, ws = batch["clip"], batch["height"], batch["width"]
    inp = cfg.input
    flip = (torch.rand(clips.shape[0], generator=gen) < 0.5) if (train and inp.flip) else None
    ctx = context_boxes(variant, cfg, hs, ws, batch["gt"], train, gen)
    x_ctx = rt.to_input(crop_resize(clips, ctx, inp.size, inp.mean, inp.std, hs, ws, flip))
    if variant.saliency is None:
        return x_ctx, None, None
    episode = None
    if variant.saliency == "spa":
        assert parts.agent is not None
        was_training = parts.model.training
        parts.model.eval()  # the CNN is fixed while SPA plays: no BN statistics updates
        episode = run_episode(
            parts.model, parts.agent, clips, hs, ws, batch["label"] if train else None, cfg.spa, inp,
            steps, deterministic=not train, autocast=rt.autocast,
        )
        parts.model.train(was_training)
        sal = episode.final_boxes
    else:
        sal = fixed_saliency_boxes(variant.saliency, cfg, hs, ws, gen)
    x_sal = rt.to_input(crop_resize(clips, sal, inp.size, inp.mean, inp.std, hs, ws, flip))
    return x_ctx, x_sal, episode


@torch.no_grad()
def validate(parts: Parts, variant: Variant, cfg: Config, rt: Runtime, loader: DataLoader) -> dict[str, float]:
    """Clip-level loss/accuracy on the held-out videos (fixed clips, test-time crops)."""
    parts.model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    total, correct, loss_sum = 0, 0, 0.0
    for batch in loader:
        x_ctx, x_sal, _ = stream_inputs(parts, variant, cfg, rt, batch, False, gen, cfg.spa.test_steps)
        with rt.autocast():
            logits = parts.model(x_ctx, x_sal).float()
        labels = batch["label"].to(rt.device)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        total += labels.numel()
    return {"val_loss": loss_sum / max(total, 1), "val_acc": correct / max(total, 1)}


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# Keys that may change between a run and its resumption without changing what is trained.
_RESUME_FREE = {("train", "epochs"), ("train", "workers"), ("train", "threads"), ("frames", "workers"), ("device",)}


def _diff_keys(a: Any, b: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), prefix + (k,))
        return out
    return [] if a == b else [prefix]


def _check_resumable(saved: dict[str, Any], cfg: Config, path: Path) -> None:
    """Refuse to resume a run whose saved config differs in anything that shapes training."""
    diffs = [".".join(map(str, d)) for d in _diff_keys(saved, cfg.to_dict()) if d not in _RESUME_FREE]
    if diffs:
        raise ValueError(
            f"{path} was written by a run with a different configuration ({', '.join(diffs[:8])}); "
            f"delete {path.parent.parent} to train from scratch, or restore the old configuration to resume"
        )


def _open_live(run_dir: Path, resume: bool):
    from dvclive import Live

    # Under Snakemake/DVC: never touch dvc.yaml, never create DVC experiments.
    return Live(str(run_dir / "dvclive"), save_dvc_exp=False, dvcyaml=None, resume=resume, report=None)


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
    early (used to test resuming without killing); the run is then incomplete.
    """
    variant = get_variant(variant_name)
    threads = set_threads(cfg.train.threads)
    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    manifest = pd.read_csv(manifest_path)
    num_classes = int(manifest["label"].max()) + 1
    train_df, val_df = split_validation(
        manifest[manifest["subset"] == "train"].reset_index(drop=True), cfg.train.val_fraction, cfg.seed
    )
    parts = build_parts(cfg, variant, num_classes, rt)
    state_path = run_dir / "state" / "last.pt"
    start_epoch, history = 0, []
    if state_path.exists():
        ck = checkpoint.load(state_path, rt.device)
        _check_resumable(ck["config"], cfg, state_path)
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
        log.info("resuming %s from epoch %d", run_dir, start_epoch)

    train_ds = ClipDataset(train_df, frames_dir, cfg.input.clip_len, seed=cfg.seed)
    val_ds = ClipDataset(val_df, frames_dir, cfg.input.clip_len, seed=cfg.seed + 1)
    val_ds.set_epoch(0)
    val_loader = DataLoader(val_ds, batch_size=cfg.train.batch_size, collate_fn=pad_collate)
    live = _open_live(run_dir, resume=start_epoch > 0)
    sha = checkpoint.git_sha()
    log.info("run %s: %d train / %d val videos, %d threads, %s", run_dir, len(train_ds), len(val_ds), threads, rt)

    for epoch in range(start_epoch, cfg.train.epochs):
        # Data order and augmentation derive from (seed, epoch) only: a resumed run replays them.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        train_ds.set_epoch(epoch)
        loader = DataLoader(
            train_ds, batch_size=cfg.train.batch_size, shuffle=True, generator=gen,
            collate_fn=pad_collate, num_workers=cfg.train.workers,
            # A last batch of one sample would break BatchNorm's training statistics.
            drop_last=len(train_ds) > cfg.train.batch_size,
        )
        parts.model.train()
        sums = {"train_loss": 0.0, "train_acc": 0.0, "spa_reward": 0.0, "spa_loss": 0.0, "spa_iou": 0.0}
        n_items = n_spa = 0
        bar = tqdm(loader, desc=f"{run_dir.name} epoch {epoch + 1}/{cfg.train.epochs}", disable=not progress, leave=False)
        for it, batch in enumerate(bar):
            x_ctx, x_sal, episode = stream_inputs(parts, variant, cfg, rt, batch, True, gen, cfg.spa.train_steps)
            labels = batch["label"].to(rt.device)
            with rt.autocast():
                logits = parts.model(x_ctx, x_sal).float()
            loss = F.cross_entropy(logits, labels)
            parts.optimizer.zero_grad(set_to_none=True)
            if parts.scaler is not None:
                parts.scaler.scale(loss).backward()
                parts.scaler.step(parts.optimizer)
                parts.scaler.update()
            else:
                loss.backward()
                parts.optimizer.step()
            b = labels.numel()
            sums["train_loss"] += loss.item() * b
            sums["train_acc"] += float((logits.argmax(1) == labels).sum())
            n_items += b
            if episode is not None and it % cfg.spa.update_every == 0:
                stats = ppo_update(parts.agent, parts.agent_optimizer, episode, cfg.spa, gen)
                sums["spa_reward"] += stats["reward"]
                sums["spa_loss"] += stats["loss"]
                n_spa += 1
            if episode is not None and not torch.isnan(batch["gt"]).any():
                boxes = clip_to_frame(episode.final_boxes, batch["height"], batch["width"])
                sums["spa_iou"] += float(box_iou(boxes, batch["gt"]).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
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
        if len(val_ds):
            metrics.update(validate(parts, variant, cfg, rt, val_loader))
            parts.scheduler.step(metrics["val_loss"])
        else:
            parts.scheduler.step(metrics["train_loss"])
        history.append(metrics)
        for k, v in metrics.items():
            if k != "epoch":
                live.log_metric(k, v)
        live.next_step()
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in metrics.items()})
        state = {
            "epoch": epoch,
            "model": parts.model.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(),
            "rng": _rng_state(),
            "history": history,
            "config": cfg.to_dict(),
            "git_sha": sha,
        }
        if parts.scaler is not None:
            state["scaler"] = parts.scaler.state_dict()
        if parts.agent is not None:
            state["agent"] = parts.agent.state_dict()
            state["agent_optimizer"] = parts.agent_optimizer.state_dict()
        checkpoint.save_atomic(state, state_path)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            live.end()
            return run_dir / "model.pt"
    live.end()

    final = {
        "model": parts.model.state_dict(),
        "agent": parts.agent.state_dict() if parts.agent is not None else None,
        "variant": variant.name,
        "num_classes": num_classes,
        "history": history,
        "config": cfg.to_dict(),
        "git_sha": sha,
    }
    checkpoint.save_atomic(final, run_dir / "model.pt")
    return run_dir / "model.pt"


def load_trained(path: Path, device: str | torch.device = "cpu") -> tuple[Config, Variant, torch.nn.Module, ActorCritic | None]:
    """Rebuild a trained model (and SPA agent) from `model.pt`, loaded with weights_only=True."""
    ck = checkpoint.load(path, device)
    cfg = from_dict(ck["config"])
    variant = get_variant(ck["variant"])
    model = build_model(cfg.model, int(ck["num_classes"]), variant.streams)
    model.load_state_dict(ck["model"])
    agent = None
    if ck.get("agent") is not None:
        agent = ActorCritic(
            state_dim(model.feature_dim, int(ck["num_classes"]), cfg.spa.state), cfg.spa.actions, cfg.spa.hidden
        )
        agent.load_state_dict(ck["agent"])
    return cfg, variant, model.to(device).eval(), agent.to(device).eval() if agent is not None else None
