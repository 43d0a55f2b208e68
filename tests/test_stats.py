"""Tests for asnet.report.stats: McNemar's exact test by hand, bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from asnet.report.stats import bootstrap_ci, mcnemar


def _pairs(b: int, c: int, both_right: int = 0, both_wrong: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * b + [0] * c + [1] * both_right + [0] * both_wrong)
    bb = np.array([0] * b + [1] * c + [1] * both_right + [0] * both_wrong)
    return a, bb


def test_mcnemar_one_sided_discordance() -> None:
    res = mcnemar(*_pairs(0, 5, both_right=10, both_wrong=3))
    assert (res["b"], res["c"], res["n"]) == (0, 5, 18)
    assert res["p"] == pytest.approx(2 * 0.5**5)  # 0.0625


def test_mcnemar_hand_case_and_symmetry() -> None:
    # b=1, c=9: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    res = mcnemar(*_pairs(1, 9))
    assert res["p"] == pytest.approx(22 / 1024)
    swapped = mcnemar(*reversed(_pairs(1, 9)))
    assert (swapped["b"], swapped["c"]) == (9, 1) and swapped["p"] == res["p"]


def test_mcnemar_equal_and_no_discordance() -> None:
    assert mcnemar(*_pairs(4, 4, both_right=2))["p"] == 1.0  # capped at 1
    res = mcnemar(*_pairs(0, 0, both_right=7, both_wrong=2))
    assert (res["b"], res["c"], res["p"]) == (0, 0, 1.0)


def test_mcnemar_large_n_does_not_overflow() -> None:
    # 3,000 discordant pairs: 2**3000 is far beyond float range; exact integers still work.
    res = mcnemar(*_pairs(1400, 1600))
    assert 0 < res["p"] < 0.001
    assert mcnemar(*_pairs(0, 3000))["p"] == 0.0  # underflows to 0, not an error


def test_mcnemar_rejects_unpaired_or_non_binary() -> None:
    with pytest.raises(ValueError, match="same videos"):
        mcnemar(np.array([1, 0]), np.array([1, 0, 1]))
    with pytest.raises(ValueError, match="0/1"):
        mcnemar(np.array([1, 2]), np.array([1, 0]))


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    correct = (rng.random(400) < 0.7).astype(int)
    lo, hi = bootstrap_ci(correct, seed=3)
    assert lo < correct.mean() < hi
    assert (lo, hi) == bootstrap_ci(correct, seed=3)
    assert (lo, hi) != bootstrap_ci(correct, seed=4)
    # Normal approximation: half-width ~ 1.96 sqrt(p(1-p)/n) = 0.045
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(0.7 * 0.3 / 400), rel=0.15)


def test_bootstrap_ci_narrows_with_more_samples() -> None:
    small = np.array([1, 0, 1, 1, 0] * 20)  # n = 100, mean 0.6
    large = np.array([1, 0, 1, 1, 0] * 400)  # n = 2000, same mean
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert w_large < w_small / 3  # ~ sqrt(20) = 4.5x narrower


def test_bootstrap_matches_literal_resampling() -> None:
    # The binomial shortcut must give the same interval as resampling videos with replacement.
    correct = np.array([1] * 45 + [0] * 15)
    rng = np.random.default_rng(0)
    literal = correct[rng.integers(0, correct.size, size=(20000, correct.size))].mean(1)
    lo, hi = bootstrap_ci(correct, n_boot=20000)
    assert lo == pytest.approx(np.quantile(literal, 0.025), abs=1 / 60 + 1e-9)
    assert hi == pytest.approx(np.quantile(literal, 0.975), abs=1 / 60 + 1e-9)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([0.5, 1.0]))
