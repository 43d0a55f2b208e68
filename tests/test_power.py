"""The audit's power formulas against hand-computed cases and a simulation."""

import math

import pytest

from asnet.report import power as P


def test_min_discordant_is_six_at_five_percent():
    # all one way: p = 2 / 2^m; m = 5 gives 0.0625, m = 6 gives 0.03125
    assert P.min_discordant(0.05) == 6
    assert P.min_discordant(0.01) == 8  # 2/2^7 = 0.0156, 2/2^8 = 0.0078


def test_best_case_min_diff_ucf_split1():
    # the paper's UCF-101 split 1: 6 of 3783 videos is 0.159 points; Table 4's 0.1 is ~4 videos
    assert P.best_case_min_diff(3783) == pytest.approx(600 / 3783)
    assert 0.1 < P.best_case_min_diff(3783) < 0.2


def test_min_diff_at_rate_hand_case():
    # n = 100, 10 discordant: c = 1 gives p = 2 * 11 / 1024 = 0.0215, c = 2 gives 0.109,
    # so 9 vs 1 is the smallest significant split: (9 - 1) / 100 = 8 points
    assert P.min_diff_at_rate(100, 0.10) == pytest.approx(8.0)
    assert P.min_diff_at_rate(100, 0.05) == math.inf  # 5 discordant can never reach p < 0.05


def test_independent_discordance():
    assert P.independent_discordance(0.9, 0.8) == pytest.approx(0.9 * 0.2 + 0.8 * 0.1)
    with pytest.raises(ValueError, match="fraction"):
        P.independent_discordance(93.7, 0.9)


@pytest.mark.parametrize("n,rate,diff", [(300, 0.3, 8.0), (1536, 0.2, 3.0)])
def test_power_matches_simulation(n, rate, diff):
    exact = P.power(n, rate, diff)
    assert abs(exact - P.simulate_power(n, rate, diff, trials=6000)) < 0.025


def test_mde_is_the_eighty_percent_point():
    n, rate = 1536, 0.2
    d = P.mde(n, rate)
    assert P.power(n, rate, d) >= 0.8 > P.power(n, rate, d - 0.1)
    # normal approximation (z_a + z_b) sqrt(r / n) = 2.80 * sqrt(0.2 / 1536) = 3.2 points
    assert d == pytest.approx(100 * 2.8016 * math.sqrt(rate / n), rel=0.05)
    assert P.mde(200000, 0.2) == pytest.approx(100 * 2.8016 * math.sqrt(0.2 / 200000), rel=1e-3)
    assert P.mde(10, 0.3) == math.inf  # 3 discordant videos can never be significant


def test_videos_needed_is_the_smallest_n():
    n = P.videos_needed(3.0, 0.2)
    assert P.mde(n, 0.2) <= 3.0 < P.mde(n - 1, 0.2)
    assert P.videos_needed(0.0, 0.2) == math.inf


def test_interval_videos():
    # half-width 1.96 sqrt(0.2 / n) = 1 point -> n = 0.2 * 196^2 = 7683
    assert P.interval_videos(1.0, 0.2) == math.ceil(0.2 * (100 * 1.959964) ** 2)
