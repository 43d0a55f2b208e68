"""BatchNorm over the global batch of a torchrun job (`train.sync_bn`), on every device.

torch.nn.SyncBatchNorm runs on GPUs only, so a CPU (gloo) job, and every test of it, could
not use it. `GlobalBatchNorm` computes the same statistics in plain PyTorch: each process
reduces its part of the batch to per-channel (count, sum, centred sum of squares), one
differentiable all-reduce (torch.distributed.nn) adds them up, and every process normalises
with the global batch's mean and variance and updates its running statistics alike. Its
backward is the all-reduce's (the gradients of the statistics are summed over processes), so
the gradients are those of BatchNorm over the whole batch. In eval mode, or outside a
process group, it is plain BatchNorm; its state_dict keys are BatchNorm's.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.nn.functional import all_reduce
from torch.nn.modules.batchnorm import _BatchNorm


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of every process's batch together."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: Tensor) -> Tensor:
        """input (N, C, ...) -> same shape."""
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        x = input.float()
        n_local = x.numel() // x.shape[1]
        mean_local = x.mean(dims)  # (C,)
        m2_local = (x - mean_local.view(1, -1, *[1] * (x.dim() - 2))).pow(2).sum(dims)  # (C,)
        # One all-reduce of (count, sum, sum of squares about 0) per channel, in float64 so
        # that the difference of sums below loses nothing a local BatchNorm would keep.
        m = mean_local.double()
        local = torch.stack([torch.full_like(m, float(n_local)), m * n_local, m2_local.double() + n_local * m * m])
        total = all_reduce(local, op=dist.ReduceOp.SUM)  # (3, C), differentiable
        n = total[0]
        mean = total[1] / n
        var = (total[2] / n - mean * mean).clamp(min=0)  # biased: what normalises the batch
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None  # type: ignore[arg-type]
                            else self.momentum)
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(mean.to(self.running_mean.dtype), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.to(self.running_var.dtype), alpha=momentum)
        shape = (1, -1, *[1] * (x.dim() - 2))
        y = (x - mean.float().view(shape)) * torch.rsqrt(var.float().view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def convert_global_bn(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm layer replaced by a GlobalBatchNorm that shares its
    parameters and buffers (an optimizer built on `module` keeps training the same
    tensors). The top module is changed in place and returned (unless it is a BatchNorm)."""
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
        return out
    for name, child in module.named_children():
        setattr(module, name, convert_global_bn(child))
    return module

