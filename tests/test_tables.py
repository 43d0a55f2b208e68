"""Cross-split aggregation and the LaTeX table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from asnet.report.tables import write_table6


def _metrics(root: Path, dataset: str, split: int, variant: str, top1: float) -> Path:
    p = root / "results/eval" / dataset / f"split{split}" / variant / "metrics.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"variant": variant, "top1": top1, "videos": 10, "clips": 40}))
    return p


def test_means_per_split_values_and_paper_numbers(tmp_path: Path) -> None:
    files = [
        _metrics(tmp_path, "ucf101", s, v, acc)
        for v, accs in {"single": (0.90, 0.92, 0.94), "asnet": (0.95, 0.96, 0.97)}.items()
        for s, acc in zip((1, 2, 3), accs, strict=True)
    ] + [_metrics(tmp_path, "synthetic", 1, "single", 0.5)]
    tex, csv = tmp_path / "table6.tex", tmp_path / "table6.csv"
    wide = write_table6(files, ["single", "siamese_center", "asnet"], tex, csv)
    ucf = wide[wide["Dataset"] == "ucf101"].set_index("Model")
    assert abs(ucf.loc["Single stream", "Mean (3 splits)"] - 92.0) < 1e-9
    assert abs(ucf.loc["ASNet (SPA)", "Split 3"] - 97.0) < 1e-9
    assert ucf.loc["ASNet (SPA)", "Paper"] == 96.8 and ucf.loc["Single stream", "Paper"] == 95.1
    assert abs(ucf.loc["Single stream", "Diff"] - (92.0 - 95.1)) < 1e-9
    assert wide[wide["Dataset"] == "synthetic"]["Diff"].isna().all()
    assert list(ucf.index) == ["Single stream", "ASNet (SPA)"]  # variant order, absent ones skipped
    text = tex.read_text()
    assert "\\toprule" in text and "\\bottomrule" in text and "96.8" in text
    assert "no number for synthetic" in text
    assert pd.read_csv(csv).shape[0] == 3
    # Deterministic output: the same inputs give the same bytes.
    again = tmp_path / "again"
    again.mkdir()
    write_table6(files, ["single", "siamese_center", "asnet"], again / "table6.tex", again / "table6.csv")
    assert (again / "table6.tex").read_bytes() == tex.read_bytes()


def test_uncertainty_columns_from_predictions(tmp_path: Path) -> None:
    files = []
    for variant, correct in {"single": [1, 0, 0, 0, 1, 0], "asnet": [1, 1, 1, 1, 1, 0]}.items():
        m = _metrics(tmp_path, "synthetic", 1, variant, sum(correct) / len(correct))
        pd.DataFrame({"video": [f"v{i}" for i in range(6)], "correct": correct}).to_csv(
            m.parent / "predictions.csv", index=False
        )
        files.append(m)
    write_table6(files, ["single", "asnet"], tmp_path / "table6.tex", tmp_path / "table6.csv")
    long = pd.read_csv(tmp_path / "table6_metrics.csv").set_index("variant")
    # asnet right where single is wrong on 3 videos, never the reverse: exact p = 2 * 0.5^3.
    assert abs(long.loc["asnet", "mcnemar_p_vs_single"] - 0.25) < 1e-9
    assert pd.isna(long.loc["single", "mcnemar_p_vs_single"])
    for v in ("single", "asnet"):
        assert long.loc[v, "top1_ci_low"] <= long.loc[v, "top1"] <= long.loc[v, "top1_ci_high"]
