"""select_runtime: the CPU path is the same on every CPU (fp32 + channels_last_3d), so seeded runs
give the same numbers on any host; bf16 is opt-in and then contiguous (torch 2.13's bf16 backward
of channels_last_3d convolutions corrupts the heap on AVX512-BF16 CPUs)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from asnet.device import Runtime, available_cores, configure_backends, select_runtime
from asnet.models.resnet3d import (
    BackboneSpec,
    GlobalAvgPool3d,
    HalvingAvgPool3d,
    build_backbone,
    global_avg_pool3d,
)

REPO = Path(__file__).resolve().parents[1]


def test_cpu_auto_is_fp32_channels_last_whatever_the_cpu_flags() -> None:
    rt = select_runtime("cpu", "auto", "auto")
    assert rt.amp_dtype is None and rt.channels_last


def test_cpu_bf16_is_opt_in_and_contiguous() -> None:
    rt = select_runtime("cpu", "bf16", "auto")
    assert rt.amp_dtype == torch.bfloat16 and not rt.channels_last
    assert select_runtime("cpu", "bf16", True).channels_last  # an explicit request is honoured
    assert select_runtime("cpu", "off", "auto").amp_dtype is None


# --- cores, backend flags, deterministic pooling ---------------------------------------------


def _one_core_child(code: str) -> str:
    """stdout of `code` run in a fresh interpreter whose affinity mask is one core."""
    prelude = "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this OS")
def test_threads_zero_is_the_cores_of_the_affinity_mask() -> None:
    # A SLURM job or `taskset` narrows the mask; os.cpu_count() would still say the node's cores.
    out = _one_core_child(
        "from asnet.device import available_cores, set_threads; import torch; "
        "n = set_threads(0); print(available_cores(), n, torch.get_num_threads(), set_threads(4))"
    )
    assert out.split() == ["1", "1", "1", "1"]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity masks on this OS")
def test_torchrun_ranks_share_the_affinity_mask() -> None:
    out = _one_core_child(
        "os.environ['LOCAL_WORLD_SIZE'] = '2'; from asnet.train.loop import _threads; print(_threads(0), _threads(3))"
    )
    assert out.split() == ["1", "1"]


def test_available_cores_falls_back_without_affinity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert available_cores() == 7


@pytest.fixture
def backend_flags(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore the process-global flags configure_backends sets (and CUBLAS_WORKSPACE_CONFIG)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn = torch.backends.cudnn
    saved = (cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    cudnn.benchmark, cudnn.deterministic = saved[0], saved[1]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def _flags() -> tuple[bool, bool, bool]:
    cudnn = torch.backends.cudnn
    return cudnn.benchmark, cudnn.deterministic, torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("deterministic", [False, True])
def test_configure_backends_changes_nothing_on_cpu(backend_flags: None, deterministic: bool) -> None:
    before = _flags()
    configure_backends(select_runtime("cpu", "auto", "auto"), deterministic)
    assert _flags() == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_configure_backends_cuda_flags(backend_flags: None) -> None:
    # The flags are plain settings: a CUDA Runtime can be configured on a CPU-only build.
    cuda = Runtime(torch.device("cuda"), torch.float16, False)
    configure_backends(cuda, deterministic=False)
    assert _flags() == (True, False, False) and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    configure_backends(cuda, deterministic=False, benchmark=False)  # evaluation: shapes vary
    assert _flags() == (False, False, False)
    configure_backends(cuda, deterministic=True)
    assert _flags() == (False, True, True) and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    configure_backends(cuda, deterministic=False)  # a later call replaces every flag
    assert _flags() == (True, False, False)


def test_configure_backends_keeps_a_deterministic_cublas_choice(backend_flags: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = Runtime(torch.device("cuda"), torch.float16, False)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    configure_backends(cuda, deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:2")  # not reproducible: replaced
    configure_backends(cuda, deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


@pytest.mark.parametrize("shape", [(2, 8, 2, 4, 4), (3, 5, 1, 3, 5), (1, 4, 3, 7, 2)])
def test_pooling_off_is_torchs_kernel_bit_for_bit(backend_flags: None, shape: tuple[int, ...]) -> None:
    torch.use_deterministic_algorithms(False)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(GlobalAvgPool3d()(x), F.adaptive_avg_pool3d(x, 1))
    assert torch.equal(global_avg_pool3d(x), F.adaptive_avg_pool3d(x, 1))
    if min(shape[2:]) >= 2:
        assert torch.equal(HalvingAvgPool3d()(x), F.avg_pool3d(x, 2, 2))
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(GlobalAvgPool3d()(cl), F.adaptive_avg_pool3d(cl, 1))


@pytest.mark.parametrize("shape", [(2, 8, 2, 4, 4), (3, 5, 5, 3, 7), (1, 4, 3, 7, 2)])
def test_pooling_on_is_a_mean_with_its_own_backward(backend_flags: None, shape: tuple[int, ...]) -> None:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), requires_grad=True)
    torch.use_deterministic_algorithms(True)
    g, h = GlobalAvgPool3d()(x), HalvingAvgPool3d()(x)
    # The mean's autograd node, not adaptive_avg_pool3d's (whose CUDA backward raises here).
    assert g.shape == (shape[0], shape[1], 1, 1, 1) and "Mean" in type(g.grad_fn).__name__
    assert "AvgPool" not in type(h.grad_fn).__name__
    torch.testing.assert_close(g, F.adaptive_avg_pool3d(x, 1))
    torch.testing.assert_close(h, F.avg_pool3d(x, 2, 2))  # odd trailing frames/rows dropped alike
    (g.sum() + h.square().sum()).backward()
    grad = x.grad.clone()
    x.grad = None
    torch.use_deterministic_algorithms(False)
    (F.adaptive_avg_pool3d(x, 1).sum() + F.avg_pool3d(x, 2, 2).square().sum()).backward()
    torch.testing.assert_close(grad, x.grad)


def _train_step(arch: str, depth: int, deterministic: bool) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    model = build_backbone(BackboneSpec(arch=arch, depth=depth, width=16 if arch == "resnext" else 8), 5)
    # 64x64: BatchNorm of the last stage normalises over 2 x 2 x 2 x 2 values (at 32x32 only 2,
    # which magnifies rounding differences of the pooling far beyond float tolerance).
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([1, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.use_deterministic_algorithms(deterministic)
    loss = F.cross_entropy(model(x), labels)
    loss.backward()
    opt.step()
    torch.use_deterministic_algorithms(False)
    return float(loss.detach()), getattr(model, model.head_name).weight.detach().clone()


@pytest.mark.parametrize(("arch", "depth"), [("resnet", 10), ("densenet", 121)])
def test_deterministic_training_step_matches(backend_flags: None, arch: str, depth: int) -> None:
    loss, head = _train_step(arch, depth, deterministic=False)
    loss_d, head_d = _train_step(arch, depth, deterministic=True)
    assert loss_d == pytest.approx(loss, rel=1e-5)
    torch.testing.assert_close(head_d, head, rtol=1e-4, atol=1e-6)
    again, head_again = _train_step(arch, depth, deterministic=False)
    assert again == loss and torch.equal(head_again, head)  # off: the same kernels, bit for bit


def test_pooling_modules_keep_the_state_dict_keys() -> None:
    model = build_backbone(BackboneSpec(arch="resnet", depth=10, width=8), 5)
    assert isinstance(model.avgpool, torch.nn.AdaptiveAvgPool3d) and model.avgpool.output_size == 1
    assert not any("avgpool" in k or ".pool." in k for k in model.state_dict())
    dense = build_backbone(BackboneSpec(arch="densenet", depth=121, width=8), 5)
    assert isinstance(dense.trunk.transition1.pool, torch.nn.AvgPool3d)
    assert not any(".pool." in k for k in dense.state_dict())
