"""How large a paired accuracy difference a test set can decide: exact McNemar power.

Two models compared on the same n test videos differ on the discordant ones: b videos only
A gets right, c only B. The difference of accuracies is (b - c) / n; under "no difference"
b ~ Bin(b + c, 1/2), which is the exact McNemar test of asnet.report.stats.mcnemar_p. A
test set bounds what it can decide in two ways, both used by the audit:

- the best case: every discordant video goes one way (c = 0); the exact test needs at least
  `min_discordant` of them (6 at alpha = 0.05), so no difference below 6 / n can be
  significant however the errors fall;
- at a discordance rate r (the fraction of videos on which the two models disagree), the
  difference that is significant when observed (`min_diff_at_rate`) and the difference that is
  detected with 80% probability (`mde`, the minimum detectable effect).

Differences are in accuracy points (x100); rates are fractions of the n videos.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy.stats import binom, norm

from asnet.report.stats import mcnemar_p


def min_discordant(alpha: float = 0.05) -> int:
    """Fewest discordant videos that can reach p < alpha, all of them going one way."""
    _check_alpha(alpha)
    m = 1
    while mcnemar_p(m, 0) >= alpha:
        m += 1
    return m


def best_case_min_diff(n: int, alpha: float = 0.05) -> float:
    """Smallest difference (points) on n videos that can be significant: min_discordant / n."""
    _check_n(n)
    return 100 * min_discordant(alpha) / n


def independent_discordance(acc_a: float, acc_b: float) -> float:
    """Discordance rate of two models whose errors are independent at accuracies a and b
    (fractions): a(1 - b) + b(1 - a). Models fine-tuned from the same backbone share many
    errors and disagree less, so this is the high end of a typical rate."""
    for name, v in (("acc_a", acc_a), ("acc_b", acc_b)):
        if not 0 <= v <= 1:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {v}")
    return acc_a * (1 - acc_b) + acc_b * (1 - acc_a)


@cache
def _reject_below(m: int, alpha: float) -> int:
    """Largest k with mcnemar_p(k, m - k) < alpha (-1 if none): the lower rejection bound.
    The binomial quantile finds it; for small m the exact p-values settle float rounding at
    the edge (beyond a few hundred videos the float tail is exact to 1e-12 relative)."""
    if m == 0:
        return -1
    k = min(int(binom.ppf(alpha / 2, m, 0.5)), m // 2)

    def p(k: int) -> float:
        return mcnemar_p(k, m - k) if m <= 400 else min(1.0, 2 * float(binom.cdf(k, m, 0.5)))

    while k >= 0 and p(k) >= alpha:
        k -= 1
    while k + 1 <= m // 2 and p(k + 1) < alpha:
        k += 1
    return k


def min_diff_at_rate(n: int, rate: float, alpha: float = 0.05) -> float:
    """Smallest difference (points) that is significant at p < alpha when round(rate * n) of
    the n videos are discordant; inf when even an all-one-way split of them is not."""
    _check_n(n)
    m = round(rate * n)
    k = _reject_below(m, alpha)
    if k < 0:
        return math.inf
    return 100 * (m - 2 * k) / n  # b = m - k wins, c = k losses


def power(n: int, rate: float, diff: float, alpha: float = 0.05) -> float:
    """Probability that the exact McNemar test on n videos rejects at alpha when the models'
    accuracies differ by `diff` points and they disagree on a fraction `rate` of videos.

    Each video is discordant with probability rate, and a discordant video favours A with
    probability (rate + d) / (2 rate), d = diff / 100: the number of discordant videos m is
    Bin(n, rate) and, given m, A's wins are Bin(m, q). Summed over m within 8 sd of its mean."""
    _check_n(n)
    d = diff / 100
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    if abs(d) > rate:
        raise ValueError(f"a difference of {diff} points needs a discordance rate >= {abs(d)}, got {rate}")
    q = (rate + d) / (2 * rate)
    sd = math.sqrt(n * rate * (1 - rate))
    lo, hi = max(0, int(n * rate - 8 * sd) - 1), min(n, int(n * rate + 8 * sd) + 1)
    ms = np.arange(lo, hi + 1)
    ks = np.array([_reject_below(int(m), alpha) for m in ms])
    ok = ks >= 0
    ms, ks = ms[ok], ks[ok]
    p_reject = binom.cdf(ks, ms, q) + binom.sf(ms - ks - 1, ms, q)  # c <= k or b <= k
    total = float((binom.pmf(ms, n, rate) * p_reject).sum())
    return float(min(1.0, total))


def mde(n: int, rate: float, alpha: float = 0.05, target: float = 0.8) -> float:
    """Minimum detectable difference (points): the smallest |difference| the exact McNemar
    test on n videos detects with probability `target` at discordance `rate` (at most rate
    itself: a larger difference needs more disagreement); inf when even that is not enough."""
    _check_n(n)
    if rate <= 0:
        return math.inf
    if n * rate > 20000:  # ~normal: the exact sum changes nothing at this size but time
        z = norm.ppf(1 - alpha / 2) + norm.ppf(target)
        return 100 * z * math.sqrt(rate / n)
    top = 100 * rate
    if power(n, rate, top, alpha) < target:
        return math.inf
    lo, hi = 0.0, top
    for _ in range(30):  # bisection to ~1e-7 points
        mid = (lo + hi) / 2
        if power(n, rate, mid, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def videos_needed(diff: float, rate: float, alpha: float = 0.05, target: float = 0.8) -> int:
    """Fewest paired test videos at which `diff` points is detected with probability
    `target` at discordance `rate` (rate >= |diff| / 100)."""
    if diff == 0:
        return math.inf  # type: ignore[return-value]
    diff = abs(diff)

    def enough(n: int) -> bool:
        return mde(n, rate, alpha, target) <= diff

    # start from the normal approximation n = rate (z_a + z_b)^2 / d^2, then bisect exactly
    z = norm.ppf(1 - alpha / 2) + norm.ppf(target)
    guess = max(min_discordant(alpha), math.ceil(rate * (100 * z / diff) ** 2))
    if guess > 10**8:
        return guess  # beyond any test set: the approximation is as good as it needs to be
    lo, hi = max(1, guess // 2), guess
    while not enough(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi


def interval_videos(margin: float, rate: float, z: float = 1.959964) -> int:
    """Paired test videos at which a 95% interval of a difference near `d` has a half-width
    of `margin` points (normal approximation, variance rate / n)."""
    if margin <= 0:
        return math.inf  # type: ignore[return-value]
    return math.ceil(rate * (100 * z / margin) ** 2)


def simulate_power(n: int, rate: float, diff: float, alpha: float = 0.05, trials: int = 4000,
                   seed: int = 0) -> float:
    """Monte-Carlo power of the same test (videos drawn one by one): a check of `power`."""
    rng = np.random.default_rng(seed)
    d = diff / 100
    p_win, p_loss = (rate + d) / 2, (rate - d) / 2
    draws = rng.multinomial(n, [p_win, p_loss, 1 - p_win - p_loss], size=trials)
    cache: dict[tuple[int, int], float] = {}
    hits = 0
    for b, c, _ in draws:
        key = (int(b), int(c))
        if key not in cache:
            cache[key] = mcnemar_p(*key)
        hits += cache[key] < alpha
    return hits / trials


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError(f"n must be >= 1 test videos, got {n}")
