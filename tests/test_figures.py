"""Figures 4 and 5 from tiny trained runs: files written, sizes fixed, PDF reproducible."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import pandas as pd
import pytest
import torch

from asnet import paths
from asnet.config import load_config
from asnet.report import figures
from asnet.train.loop import load_trained, train_run

DATASET, SPLIT = "synthetic_tiny", 1


@pytest.fixture()
def tiny_runs(in_tiny_workdir: Path, tmp_path: Path) -> dict[str, Path]:
    """A 2-epoch ASNet run and a 1-epoch single-stream run, outside the shared results/ tree."""
    runs = {}
    for variant, epochs in (("asnet", 2), ("single", 1)):
        cfg = load_config(overrides=["preset=tiny", f"train.epochs={epochs}"])
        run_dir = tmp_path / "checkpoints" / DATASET / f"split{SPLIT}" / variant
        runs[variant] = train_run(
            cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), run_dir, variant, progress=False
        )
    return runs


def _png_size(path: Path) -> tuple[int, int]:
    h, w = mpimg.imread(path).shape[:2]
    return w, h


def _expected(size_in: tuple[float, float]) -> tuple[int, int]:
    return round(size_in[0] * figures.DPI), round(size_in[1] * figures.DPI)


def test_figures(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    asnet_dir = tiny_runs["asnet"].parent

    # Figure 4: two epochs of SPA metrics; byte-identical when made twice.
    hist = figures.read_history(asnet_dir)
    assert [h["epoch"] for h in hist] == [0, 1] and all("spa_reward" in h and "spa_loss" in h for h in hist)
    assert [h["spa_reward"] for h in figures._dvclive_history(asnet_dir)] == pytest.approx(
        [h["spa_reward"] for h in hist]
    )
    out_a, out_b = tmp_path / "a" / "figure4", tmp_path / "b" / "figure4"
    figures.figure4([asnet_dir], out_a)
    figures.figure4([asnet_dir], out_b)
    for ext in (".pdf", ".png"):
        assert out_a.with_suffix(ext).stat().st_size > 0
    assert out_a.with_suffix(".pdf").read_bytes() == out_b.with_suffix(".pdf").read_bytes()
    assert out_a.with_suffix(".png").read_bytes() == out_b.with_suffix(".png").read_bytes()
    assert _png_size(out_a.with_suffix(".png")) == _expected(figures.FIG4_SIZE)
    with pytest.raises(ValueError, match="no SPA metrics"):
        figures.figure4([tiny_runs["single"].parent], tmp_path / "bad")

    # Figure 5: one row per chosen test video, frames + Grad-CAM of ASNet and single stream.
    manifest = pd.read_csv(paths.manifest(DATASET, SPLIT))
    n_rows = len(figures.choose_videos(manifest, 2))
    assert n_rows == 2
    out5 = tmp_path / "figure5"
    figures.figure5(
        tiny_runs["asnet"], paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out5, n_videos=2,
        single_model_path=tiny_runs["single"],
    )
    for ext in (".pdf", ".png"):
        assert out5.with_suffix(ext).stat().st_size > 0
    n_cols = figures.FRAMES_SHOWN + 2
    assert _png_size(out5.with_suffix(".png")) == _expected(figures.fig5_size(n_rows, n_cols))

    # Grad-CAM: the class it explains is the model's prediction; on a 3x3 map it localises.
    _, _, model, _ = load_trained(tiny_runs["asnet"])
    gen = torch.Generator().manual_seed(0)
    x_ctx, x_sal = torch.randn(1, 3, 4, 96, 96, generator=gen), torch.randn(1, 3, 4, 32, 32, generator=gen)
    cam, pred, grid = figures.grad_cam(model, x_ctx, x_sal)
    with torch.no_grad():
        assert pred == int(model.head(model.features(x_ctx), model.features(x_sal)).argmax())
    assert cam.shape == (4, 96, 96) and grid[1:] == (3, 3)
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0) and cam.std() > 0


def test_choose_videos_one_per_class_first() -> None:
    df = pd.DataFrame({
        "video": ["b0", "a0", "a1", "c0", "t0"],
        "label": [1, 0, 0, 2, 0],
        "subset": ["test", "test", "test", "test", "train"],
    })
    assert figures.choose_videos(df, 4)["video"].tolist() == ["a0", "b0", "c0", "a1"]
