"""Table 5: features of two trained runs, six SVMs, C chosen by CV on training videos only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from asnet import paths
from asnet.config import load_config
from asnet.report.svm import C_GRID, fit_svm, table5
from asnet.train.loop import train_run

DATASET, SPLIT = "synthetic_tiny", 1


def test_fit_svm_separable_and_cv_only_on_train() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (30, 5)), rng.normal(2, 1, (30, 5))])
    y = np.repeat([0, 1], 30)
    res = fit_svm(x[::2], y[::2], x[1::2], y[1::2])
    assert res["top1"] > 0.9 and res["C"] in C_GRID and 0 <= res["cv_score"] <= 1
    # Labels of the test videos cannot influence C: shuffling them leaves C unchanged.
    res2 = fit_svm(x[::2], y[::2], x[1::2], rng.permutation(y[1::2]))
    assert res2["C"] == res["C"]


def test_table5_from_tiny_runs(in_tiny_workdir: Path) -> None:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    runs = {}
    for variant in ("single", "asnet"):
        out = in_tiny_workdir / "svm_runs" / variant
        runs[variant] = train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, variant,
                                  progress=False)
    tex = in_tiny_workdir / "svm_out" / "table5.tex"
    df = table5(runs["single"], runs["asnet"], paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), tex,
                progress=False)
    assert len(df) == 6 and df["Top-1"].between(0, 100).all()
    assert list(df["Input"]) == ["X_c", "X_s", "X_c + X_s"] * 2
    assert set(df["Paper HMDB-51"]) == {73.9, 74.5, 75.5, 75.0, 75.8, 76.6}
    assert pd.read_csv(tex.with_suffix(".csv")).shape == (6, 12)  # + train, test, excluded videos
    assert (df["CI low"] <= df["Top-1"]).all() and (df["Top-1"] <= df["CI high"]).all()
    assert df["Diff"].isna().all()  # not HMDB-51: no difference to the paper's numbers
    text = tex.read_text()
    assert "\\toprule" in text and "(\\%)" in text and "\\\\%" not in text  # LaTeX percent, not a line break
    preds = pd.read_csv(tex.with_name("table5_predictions.csv"))
    assert len(preds) == 6 * int((pd.read_csv(paths.manifest(DATASET, SPLIT))["subset"] == "test").sum())
