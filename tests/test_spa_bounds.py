"""The best constant box (asnet.spa.bounds), the localisation table and its statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from asnet.data.crops import box_iou
from asnet.report.localisation import write_localisation
from asnet.report.stats import bootstrap_mean_ci, sign_test
from asnet.spa.bounds import best_constant_box, constant_boxes, grid, split_constant_box


def test_best_constant_box_finds_a_known_box_on_frames_of_two_sizes() -> None:
    # Actors at the grid box (u, v, f) = (0.7, 0.3, 0.2), jittered a little, on 64x64 and 80x120 frames.
    g = torch.Generator().manual_seed(0)
    hs = torch.tensor([64] * 20 + [80] * 20)
    ws = torch.tensor([64] * 20 + [120] * 20)
    gt = constant_boxes((0.7, 0.3, 0.2), hs, ws) + torch.randn(40, 4, generator=g) * 0.5
    gt[3] = float("nan")  # a clip without an actor box is ignored
    rel, score = best_constant_box(gt, hs, ws)
    assert rel == pytest.approx((0.7, 0.3, 0.2), abs=1e-6)
    assert 0.8 < score <= 1.0
    # No other grid box does better (the search is exhaustive).
    keep = ~torch.isnan(gt).any(1)
    others = [float(box_iou(constant_boxes(c, hs[keep], ws[keep]), gt[keep]).mean()) for c in grid()]
    assert max(others) == pytest.approx(score)


def test_best_constant_box_of_two_clusters_is_the_more_frequent_one() -> None:
    hs = ws = torch.full((10,), 64)
    gt = torch.cat([constant_boxes((0.0, 0.0, 0.3), hs[:7], ws[:7]), constant_boxes((1.0, 1.0, 0.3), hs[7:], ws[7:])])
    rel, score = best_constant_box(gt, hs, ws)
    assert rel == pytest.approx((0.0, 0.0, 0.3), abs=1e-6) and score == pytest.approx(0.7)


def test_constant_boxes_stay_inside_the_frame() -> None:
    hs, ws = torch.tensor([48, 64]), torch.tensor([64, 48])
    for c in grid():
        b = constant_boxes(c, hs, ws)
        assert (b[:, :2] >= 0).all() and (b[:, 2] <= ws + 1e-4).all() and (b[:, 3] <= hs + 1e-4).all()


def test_best_constant_box_without_boxes_is_an_error() -> None:
    with pytest.raises(ValueError, match="no clip has a ground-truth box"):
        best_constant_box(torch.full((3, 4), float("nan")), torch.full((3,), 64), torch.full((3,), 64))


def test_split_constant_box_reads_training_clips_only(in_tiny_workdir: Path) -> None:
    manifest = Path("data/synthetic_tiny/manifests/split1.csv").resolve()
    frames = Path("data/synthetic_tiny/frames").resolve()
    rel = split_constant_box(manifest, frames, 4)
    assert rel is not None and all(0 <= x <= 1 for x in rel)
    # Only the test videos' boxes changed: same answer (test data never enters the fit).
    df = pd.read_csv(manifest)
    assert (df["subset"] == "test").any()
    train_only = in_tiny_workdir / "train_only.csv"
    df[df["subset"] == "train"].to_csv(train_only, index=False)
    assert split_constant_box(train_only.resolve(), frames, 4) == rel


def test_bootstrap_mean_ci_brackets_the_mean_and_is_deterministic() -> None:
    x = np.random.default_rng(0).uniform(0, 1, 200)
    lo, hi = bootstrap_mean_ci(x)
    assert lo < x.mean() < hi and hi - lo < 0.2
    assert bootstrap_mean_ci(x) == (lo, hi)
    assert bootstrap_mean_ci(np.full(5, 0.3)) == pytest.approx((0.3, 0.3))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        bootstrap_mean_ci(np.zeros(0))


def test_sign_test_counts_wins_and_drops_ties() -> None:
    t = sign_test(np.array([0.5, 0.4, 0.3, 0.2]), np.array([0.1, 0.1, 0.3, 0.9]))
    assert (t["wins"], t["losses"], t["n"]) == (2, 1, 4)
    assert t["p"] == pytest.approx(1.0)
    t = sign_test(np.ones(10), np.zeros(10))
    assert t["p"] == pytest.approx(2 / 2**10)


def _preds(path: Path, rng: np.random.Generator, spa: float, n: int = 30, **cols: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame({"video": [f"v{i}" for i in range(n)], "iou_spa": rng.uniform(spa - 0.05, spa + 0.05, n)})
    for name, mean in cols.items():
        df[name] = rng.uniform(mean - 0.05, mean + 0.05, n)
    df.to_csv(path, index=False)
    return path


def test_localisation_table_pools_splits_and_tests_spa_against_the_best_fixed_box(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    fixed = {"iou_random": 0.07, "iou_center": 0.05, "iou_best_constant": 0.10}
    runs = [
        {"dataset": "synthetic", "variant": "asnet",
         "predictions": [_preds(tmp_path / f"split{s}/asnet/predictions.csv", rng, 0.2, **fixed) for s in (1, 2)]},
        {"dataset": "synthetic", "variant": "asnet_oracle_spa",
         "predictions": [_preds(tmp_path / f"split{s}/oracle/predictions.csv", rng, 0.4) for s in (1, 2)]},
        # A missing run (not evaluated yet) gives an empty row, not a crash.
        {"dataset": "synthetic", "variant": "asnet_spatial_spa", "predictions": [tmp_path / "missing.csv"]},
    ]
    table = write_localisation(runs, tmp_path / "out/localisation.tex").set_index("Box")
    assert (tmp_path / "out/localisation.csv").exists()
    assert "Best constant box" in (tmp_path / "out/localisation.tex").read_text()
    spa = table.loc["SPA (paper)"]
    assert spa["Videos"] == 60 and spa["vs best fixed"] == "Best constant box"
    assert (spa["Wins"], spa["Losses"]) == (60, 0) and spa["Sign p"] < 1e-10
    assert spa["CI low"] < spa["Mean IoU"] < spa["CI high"]
    assert table.loc["Best constant box", "Mean IoU"] == pytest.approx(0.10, abs=0.02)
    assert table.loc["SPA, oracle IoU reward", "Mean IoU"] == pytest.approx(0.4, abs=0.02)
    assert np.isnan(table.loc["SPA, box-aware state", "Mean IoU"])


def test_localisation_runs_cover_the_synthetic_datasets_and_splits(tmp_path: Path) -> None:
    from asnet import stages
    from asnet.config import load_config

    cfg = load_config(overrides=["preset=default"])
    runs = stages.localisation_runs(cfg)
    assert [r["variant"] for r in runs] == ["asnet", "asnet_oracle_spa", "asnet_spatial_spa"]
    assert [p.parent.parent.name for p in runs[1]["predictions"]] == ["split1", "split2", "split3"]
    # Without a dataset with actor boxes the table says so instead of failing.
    empty = write_localisation([], tmp_path / "localisation.tex")
    assert empty.empty and "no dataset with ground-truth actor boxes" in (tmp_path / "localisation.tex").read_text()
