"""The audit's decision rules on hand-made per-video outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from asnet.report.audit import Claim, absolute_claim, judge, paired, paired_values


def _outcomes(correct: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"correct": correct}, index=pd.Index([f"v{i}" for i in range(len(correct))], name="video"))


def test_paired_counts_discordant_videos() -> None:
    a = _outcomes([1] * 30 + [0] * 10)
    b = _outcomes([0] * 25 + [1] * 5 + [0] * 10)
    c = paired("a vs b", a, b)
    assert (c.b, c.c, c.n) == (25, 0, 40) and c.p < 1e-6
    assert c.acc_a == pytest.approx(75.0) and c.diff_lo > 0


def test_verdicts() -> None:
    better = paired("x", _outcomes([1] * 40 + [0] * 10), _outcomes([0] * 40 + [0] * 10))
    worse = paired("y", _outcomes([0] * 50), _outcomes([1] * 40 + [0] * 10))
    tie = paired("z", _outcomes([1, 0] * 10), _outcomes([0, 1] * 10))
    assert judge([better]) == "reproduces"
    assert judge([better, worse]) == "does not reproduce"
    assert judge([better, tie]) == "cannot judge"
    # on the paper's own dataset a gain far above our interval does not reproduce, even if not significant
    tie.paper_gain = 60.0  # our interval is about +-44 points on 20 videos
    assert judge([tie]) == "does not reproduce"


def test_absolute_numbers_only_judged_on_the_papers_datasets() -> None:
    rng = np.random.default_rng(0)
    pred = _outcomes(list((rng.random(2000) < 0.9).astype(int)))
    c = Claim("1", "t", "s", "p")
    absolute_claim(c, [("ucf101", "single", pred, 90.0)])
    assert c.verdict == "reproduces"
    c = Claim("1", "t", "s", "p")
    absolute_claim(c, [("ucf101", "single", pred, 95.1)])
    assert c.verdict == "does not reproduce"
    c = Claim("1", "t", "s", "p")
    absolute_claim(c, [("synthetic", "single", pred, None)])
    assert c.verdict == "cannot judge"


def test_paired_values_sign_test() -> None:
    idx = pd.Index([f"v{i}" for i in range(30)])
    spa = pd.Series(np.linspace(0.5, 0.8, 30), index=idx)
    centre = pd.Series(np.full(30, 0.1), index=idx)
    c = paired_values("iou", spa, centre)
    assert (c.b, c.c) == (30, 0) and c.p < 1e-6 and c.diff_lo > 0


def test_audit_waits_only_for_the_tables_it_is_asked_to_judge() -> None:
    """report.audit_tables: [table6] makes the audit of a Table 6 run (the anchor check and the
    coverage records always), without Table 2's backbones; by default it waits for every table."""
    from asnet.config import ConfigError, load_config
    from asnet.stages import audit_inputs

    full = {str(p) for p in audit_inputs(load_config(overrides=["preset=tiny"]))}
    assert {"results/table2.tex", "results/table5_predictions.csv", "results/table6.tex",
            "results/anchor_check.csv"} <= full
    only6 = {str(p) for p in audit_inputs(load_config(overrides=["preset=tiny", "report.audit_tables=[table6]"]))}
    assert {"results/table6.tex", "results/anchor_check.csv"} <= only6
    assert not any(p.startswith(("results/table1", "results/table2", "results/table5")) for p in only6)
    with pytest.raises(ConfigError, match="report.audit_tables"):
        load_config(overrides=["preset=tiny", "report.audit_tables=[table7]"])


def _pair(n: int, wins: int, losses: int, acc_b: float = 0.7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A and B on n videos: B right on the first acc_b * n; A differs on `wins` + `losses` of them."""
    b = np.zeros(n, int)
    b[: int(acc_b * n)] = 1
    a = b.copy()
    a[int(acc_b * n): int(acc_b * n) + wins] = 1  # A right where B is wrong
    a[:losses] = 0  # A wrong where B is right
    return _outcomes(list(a)), _outcomes(list(b))


def test_a_tight_interval_below_the_margin_does_not_reproduce() -> None:
    # 10 vs 10 discordant of 2000: difference 0, interval about +-0.3 points, all below +1
    c = paired("flat", *_pair(2000, 10, 10))
    assert judge([c], margin=1.0) == "does not reproduce" and c.outcome == "no gain"
    assert judge([paired("flat", *_pair(2000, 10, 10))], margin=0.0) == "cannot judge"


def test_an_undecided_comparison_states_its_detectable_effect_and_need() -> None:
    from asnet.report import power
    from asnet.report.audit import comparative_claim

    c = paired("close", *_pair(400, 30, 22))  # +2 points, p ~ 0.33
    claim = Claim("7", "t", "s", "p")
    comparative_claim(claim, [c], margin=1.0)
    assert claim.verdict == "cannot judge" and c.outcome == "undecided"
    assert c.mde == pytest.approx(power.mde(400, 52 / 400))
    assert c.needed == power.videos_needed(2.0, 52 / 400) and c.needed > 400
    assert "would need about" in claim.need and "paired test videos" in claim.need
    # more power at the same discordance decides it
    big = paired("close", *_pair(400 * 8, 30 * 8, 22 * 8))
    assert judge([big], margin=1.0) == "reproduces"


def test_holm_family_size_widens_the_detectable_effect() -> None:
    one = paired("x", *_pair(1000, 60, 40))
    judge([one])
    many = [paired(f"x{i}", *_pair(1000, 60, 40)) for i in range(10)]
    judge(many)
    assert many[0].mde > one.mde
