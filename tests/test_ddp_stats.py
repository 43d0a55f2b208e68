"""The statistics of a 2-rank step equal one process's over the same global batch (CPU, gloo).

Two real gloo ranks under torchrun hold unequal parts (3 and 1 clips, as after an
unreadable video) of one fixed global batch. With train.sync_bn (asnet.train.sync_bn) the
tiny ASNet's training forward, its BatchNorm running statistics and its DDP gradients (each
rank's loss weighted by its share, ddp.StepPlan) equal a single process's on the whole
batch; SPA's standardised advantages and its running state statistics, all-reduced, equal
those of one process over every rank's episodes. Float tolerance: the sums are ordered
differently.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchrun_job import run_job

from asnet.config import load_config
from asnet.models import build_model
from asnet.spa.ppo import advantages

COUNTS = (3, 1)  # clips of rank 0 and rank 1
STATE_DIM, STEPS, CLASSES = 10, 3, 3
TIMEOUT_S = 120

WORKER = """
import os, sys
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from asnet.train import distributed as ddp
from asnet.train.sync_bn import convert_global_bn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from inputs import COUNTS, global_inputs, fresh_model, fresh_agent
from asnet.spa.ppo import advantages

info = ddp.init_from_env("cpu")
rank = info.rank
lo, hi = sum(COUNTS[:rank]), sum(COUNTS[: rank + 1])
x, labels, returns, values, states = global_inputs()
plan = ddp.step_plan(hi - lo, info)
model = convert_global_bn(fresh_model())
model.train()
net = DistributedDataParallel(model)
logits = net(x[lo:hi], x[lo:hi].flip(-1))
loss = F.cross_entropy(logits, labels[lo:hi]) * plan.share
loss.backward()
out = {"logits": logits.detach(), "grads": {k: p.grad for k, p in model.named_parameters()},
       "buffers": {k: b.clone() for k, b in model.named_buffers()}}
out["adv"] = advantages(returns[:, lo:hi], values[:, lo:hi], True, plan.reduce)
agent = fresh_agent()
agent.update_state_norm(states[:, lo:hi], plan.reduce)
out["state"] = {k: b.clone() for k, b in agent.named_buffers()}
torch.save(out, f"rank{rank}.pt")
ddp.cleanup(info)
"""

INPUTS = f"""
import torch
from asnet.config import load_config
from asnet.models import build_model
from asnet.spa.agent import ActorCritic
COUNTS = {COUNTS!r}

def global_inputs():
    g = torch.Generator().manual_seed(0)
    n = sum(COUNTS)
    x = torch.randn(n, 3, 4, 32, 32, generator=g)
    labels = torch.randint({CLASSES}, (n,), generator=g)
    returns, values = torch.randn({STEPS}, n, generator=g), torch.randn({STEPS}, n, generator=g)
    states = torch.randn({STEPS}, n, {STATE_DIM}, generator=g) * 3 + 1
    return x, labels, returns, values, states

def fresh_model():
    torch.manual_seed(0)
    return build_model(load_config(overrides=["preset=tiny"]).model, {CLASSES}, 2)

def fresh_agent():
    torch.manual_seed(0)
    agent = ActorCritic({STATE_DIM}, 3, 8, "running")
    g = torch.Generator().manual_seed(1)  # a past already merged in: the update combines both
    agent.update_state_norm(torch.randn(5, {STATE_DIM}, generator=g))
    return agent
"""


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_rank_first_step_statistics_equal_one_process(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "inputs.py").write_text(INPUTS)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "worker.py"]
    proc = run_job(cmd, tmp_path, TIMEOUT_S, "2-rank statistics job")
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    # One process over the whole batch: plain BatchNorm, the plain mean loss.
    sys.path.insert(0, str(tmp_path))
    try:
        import inputs  # the worker's own definitions of the batch, model and agent
    finally:
        sys.path.remove(str(tmp_path))
    x, labels, returns, values, states = inputs.global_inputs()
    model = inputs.fresh_model()
    model.train()
    logits = model(x, x.flip(-1))
    F.cross_entropy(logits, labels).backward()
    agent = inputs.fresh_agent()
    agent.update_state_norm(states)
    adv = advantages(returns, values, True)
    edges = [0, COUNTS[0], sum(COUNTS)]
    for r, got in enumerate(ranks):
        lo, hi = edges[r], edges[r + 1]
        assert _close(got["logits"], logits[lo:hi].detach()), f"rank {r}: logits"
        for k, b in model.named_buffers():
            assert _close(got["buffers"][k], b), f"rank {r}: BatchNorm buffer {k}"
        for k, p in model.named_parameters():
            assert _close(got["grads"][k], p.grad), f"rank {r}: gradient of {k}"
        assert _close(got["adv"], adv[:, lo:hi]), f"rank {r}: advantages"
        for k, b in agent.named_buffers():
            assert _close(got["state"][k], b), f"rank {r}: SPA state statistic {k}"
    # Without the global statistics the ranks would differ from one process: the test can fail.
    local = advantages(returns[:, : COUNTS[0]], values[:, : COUNTS[0]], True)
    assert not _close(local, adv[:, : COUNTS[0]])


def test_global_batch_norm_is_plain_batch_norm_in_one_process() -> None:
    """No process group: GlobalBatchNorm is BatchNorm, bit for bit, and train.sync_bn's
    conversion keeps the parameters the optimizer holds."""
    from asnet.train.sync_bn import GlobalBatchNorm, convert_global_bn

    torch.manual_seed(0)
    model = build_model(load_config(overrides=["preset=tiny"]).model, CLASSES, 2)
    params = list(model.parameters())
    x = torch.randn(2, 3, 4, 32, 32)
    ref = model(x, x)
    converted = convert_global_bn(build_model(load_config(overrides=["preset=tiny"]).model, CLASSES, 2))
    converted.load_state_dict(model.state_dict())
    model2 = convert_global_bn(model)
    assert model2 is model and list(model.parameters()) == params
    assert any(isinstance(m, GlobalBatchNorm) for m in model.modules())
    assert torch.equal(converted(x, x), ref)
