"""`asnet plan`: what each training and evaluation job of a target costs on a GPU, before it runs.

* :mod:`asnet.plan.gpus`: GPU classes (memory, assumed achieved TFLOP/s), as data.
* :mod:`asnet.plan.step`: the peak memory of one real step, run on fake tensors
  (:func:`step_peak_bytes`, :func:`oom_message`), and ``--measure``'s timed real steps.
* :mod:`asnet.plan.jobs`: which jobs a target needs, and their videos and steps per epoch.
* :mod:`asnet.plan.table`: the plan table (results/plan.csv).
"""

from typing import Any

__all__ = ["oom_message", "step_peak_bytes"]


def __getattr__(name: str) -> Any:
    # asnet.plan.step imports torch: loaded on first use, so that importing the GPU classes or
    # the targets (the CLI, the Snakefile planning the workflow) stays cheap.
    if name in __all__:
        from asnet.plan import step

        return getattr(step, name)
    raise AttributeError(f"module 'asnet.plan' has no attribute {name!r}")
