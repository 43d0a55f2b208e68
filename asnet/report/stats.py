"""Uncertainty of per-video top-1 accuracy: bootstrap intervals and McNemar's paired test.

Test sets are small (HMDB-51: 1,530 videos per split), so a 1-point gap between two models
can be noise. Both functions take 0/1 per-video correctness, as in predictions.csv.
"""

from __future__ import annotations

from math import comb

import numpy as np


def _as_binary(correct: np.ndarray, name: str = "correct") -> np.ndarray:
    """1-D int array of 0/1 values; ValueError otherwise (accuracy is a mean of 0/1 outcomes)."""
    arr = np.asarray(correct)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of per-video 0/1 correctness, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: values must be 0/1 (or booleans)")
    return arr.astype(np.int64)


def bootstrap_ci(
    correct: np.ndarray, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of the accuracy, the mean of 0/1 correctness.

    Resampling n videos with replacement from data with k correct gives a resample whose
    number of correct videos is exactly Binomial(n, k / n). Drawing that count directly is the
    same bootstrap distribution, vectorised, in O(n_boot) memory instead of O(n_boot * n)
    (10,000 x 3,783 UCF-101 test videos would be 300 MB of indices). Deterministic by `seed`.
    """
    arr = _as_binary(correct)
    if arr.size == 0:
        raise ValueError("correct: empty; no videos to bootstrap")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = arr.size
    rng = np.random.default_rng(seed)
    means = rng.binomial(n, arr.mean(), size=n_boot) / n  # (n_boot,)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, float | int]:
    """Exact McNemar test of two models' 0/1 correctness on the SAME videos (same order).

    b = videos A gets right and B wrong, c = A wrong and B right. Under H0 (equal accuracy)
    the discordant pairs split as X ~ Bin(b + c, 1/2); two-sided p = min(1, 2 P[X <= min(b, c)]),
    and p = 1 when there are no discordant pairs. Exact integer arithmetic (math.comb), so
    it holds for any test-set size. Returns {"b", "c", "n", "p"} (n = videos compared).
    """
    a = _as_binary(correct_a, "correct_a")
    bb = _as_binary(correct_b, "correct_b")
    if a.shape != bb.shape:
        raise ValueError(f"paired test needs the same videos: {a.size} vs {bb.size} outcomes")
    b = int(((a == 1) & (bb == 0)).sum())
    c = int(((a == 0) & (bb == 1)).sum())
    return {"b": b, "c": c, "n": int(a.size), "p": mcnemar_p(b, c)}


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar (= sign test) p-value from the discordant counts b and c."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(comb(m, i) for i in range(min(b, c) + 1))
    # int / int true division is correctly rounded in Python, even for 2**m beyond float range.
    return min(1.0, 2 * tail / 2**m)


def bootstrap_mean_ci(
    values: np.ndarray, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of the mean of per-video values (e.g. a box's
    mean IoU with the actor per test video): videos resampled with replacement, in chunks so
    memory stays O(chunk * n). Deterministic by `seed`."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"values: expected a non-empty 1-D array of per-video values, got shape {arr.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // arr.size)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        means[start : start + k] = arr[rng.integers(0, arr.size, size=(k, arr.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def sign_test(a: np.ndarray, b: np.ndarray) -> dict[str, float | int]:
    """Two-sided exact sign test of paired per-video values a vs b (same videos, same order):
    wins = a > b, losses = a < b, ties dropped; p as McNemar's (mcnemar_p) on (wins, losses)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired test needs the same videos: shapes {x.shape} vs {y.shape}")
    wins, losses = int((x > y).sum()), int((x < y).sum())
    return {"wins": wins, "losses": losses, "n": int(x.size), "p": mcnemar_p(wins, losses)}
