"""`asnet plan`: what each training and evaluation job of a target costs on a GPU, before it runs.

* :mod:`asnet.plan.gpus`: GPU classes (memory, assumed achieved TFLOP/s), as data.
* :mod:`asnet.plan.step`: the peak memory of one real step, run on fake tensors
  (:func:`step_peak_bytes`, :func:`oom_message`), and ``--measure``'s timed real steps.
* :mod:`asnet.plan.jobs`: which jobs a target needs, and their videos and steps per epoch.
* :mod:`asnet.plan.table`: the plan table (results/plan.csv).
"""

from asnet.plan.step import oom_message, step_peak_bytes

__all__ = ["oom_message", "step_peak_bytes"]
