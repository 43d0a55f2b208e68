"""The test protocol (asnet.train.evaluate): view geometry, the outputs of evaluate_videos
(metrics.json recomputed from scores.npz alone, excluded videos counted, confusion.png),
and a trained tiny model evaluated under both eval.views."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from asnet import paths
from asnet.config import EvalConfig, load_config
from asnet.data.crops import centre_crop_boxes, crop_resize
from asnet.data.frames import INDEX_COLUMNS
from asnet.hara import Normalisation
from asnet.report.figures import confusion_matrix
from asnet.report.tables import write_table6
from asnet.train.evaluate import evaluate_run, evaluate_videos, view_boxes
from asnet.train.loop import train_run

CLIP_LEN = 8
N_CLASSES = 7
# video -> (frames, height, width, label); 20 and 13 frames leave partial last clips.
# Labels: the scorer below gets a and d right; class 0 has no test video.
VIDEOS = {"a": (20, 12, 20, 4), "b": (16, 20, 12, 1), "c": (13, 12, 16, 2), "d": (5, 10, 10, 4), "e": (24, 12, 18, 3)}


def write_store(root: Path, excluded: dict[str, str] | None = None) -> Path:
    """Frames whose pixels vary over time and space (so every clip and crop scores differently)."""
    frames_dir = root / "frames"
    frames_dir.mkdir(parents=True)
    rows = []
    for i, (video, (t, h, w, _)) in enumerate(VIDEOS.items()):
        tt, yy, xx = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
        arr = ((tt * 7 + xx * 11 + yy * 3 + i * 29) % 256).astype(np.uint8)
        np.save(frames_dir / f"{video}.npy", np.repeat(arr[..., None], 3, axis=3))
        rows.append([video, t, h, w, 25.0, t, "ok", ""])
    for video, reason in (excluded or {}).items():
        rows.append([video, 0, 0, 0, float("nan"), 0, "excluded", reason])
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(frames_dir / "index.csv", index=False)
    return frames_dir


def make_df(extra: tuple[str, ...] = ()) -> pd.DataFrame:
    videos = list(VIDEOS) + list(extra)
    labels = [VIDEOS[v][3] if v in VIDEOS else 1 for v in videos]
    return pd.DataFrame({"video": videos, "label": labels, "class_name": [f"class{k}" for k in labels],
                         "subset": "test"})


def crop_scorer(clips: torch.Tensor, heights: torch.Tensor, widths: torch.Tensor, gt: torch.Tensor,
                boxes: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A fixed, pixel-driven classifier: the mean grey level of each view's crop against 7
    class centres (softmax over -distance), so different clips and crops score differently."""
    n, v = boxes.shape[:2]
    centres = torch.linspace(0.2, 0.8, N_CLASSES)
    out = torch.empty(n, v, N_CLASSES)
    for i in range(n):
        for j in range(v):
            x0, y0, x1, y1 = (int(round(float(c))) for c in boxes[i, j])
            m = clips[i, :, y0:y1, x0:x1].float().mean() / 255
            out[i, j] = torch.softmax(-40 * (m - centres) ** 2, dim=0)
    return out, {"crop_area": (boxes[:, 0, 2] - boxes[:, 0, 0]) * (boxes[:, 0, 3] - boxes[:, 0, 1])}


def test_view_boxes_hara_centre_and_mmaction_three_crops() -> None:
    h, w = torch.tensor([60, 100]), torch.tensor([100, 60])  # landscape, portrait
    hara = view_boxes("hara", h, w)
    assert hara.shape == (2, 1, 4)
    torch.testing.assert_close(hara[:, 0], centre_crop_boxes(h, w))
    torch.testing.assert_close(hara[:, 0], torch.tensor([[20.0, 0, 80, 60], [0, 20, 60, 80]]))
    three = view_boxes("mmaction_10x3", h, w)
    # ThreeCrop after Resize(-1, size): the short-side square at the start / centre / end of the long side.
    torch.testing.assert_close(three[0], torch.tensor([[0.0, 0, 60, 60], [20, 0, 80, 60], [40, 0, 100, 60]]))
    torch.testing.assert_close(three[1], torch.tensor([[0.0, 0, 60, 60], [0, 20, 60, 80], [0, 40, 60, 100]]))
    with pytest.raises(ValueError, match="hara, mmaction_10x3"):
        view_boxes("five_crop", h, w)


def test_centre_crop_is_short_side_resize_then_centre_crop() -> None:
    """Hara's test crop (Scale(size): short side to size; CenterCrop(size)) == crop_resize of
    centre_crop_boxes, up to the resampling at the crop's edges."""
    h, w, size = 60, 100, 30
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    frame = (100 + 60 * torch.sin(xx / 9.0) + 40 * torch.cos(yy / 7.0)).round().to(torch.uint8)
    clip = frame[None, None, :, :, None].expand(1, 2, h, w, 3).contiguous()  # (1, T, H, W, 3)
    hs, ws = torch.tensor([h]), torch.tensor([w])
    ours = crop_resize(clip, centre_crop_boxes(hs, ws), size, Normalisation("raw", 255.0, (0.0, 0.0, 0.0), (1.0,) * 3), hs, ws)[0, 0, 0]
    # Hara et al.: Scale -> (oh, ow) = (size, int(size * w / h)); CenterCrop x1 = round((ow - size) / 2).
    ow = int(size * w / h)
    scaled = F.interpolate(frame[None, None].float(), size=(size, ow), mode="bilinear", align_corners=False,
                           antialias=True)[0, 0]
    x1 = int(round((ow - size) / 2.0))
    hara = scaled[:, x1 : x1 + size]
    assert ours.shape == hara.shape == (size, size)
    diff = (ours - hara).abs()
    assert diff[:, 1:-1].max() <= 1.0  # interior: the same pixels up to uint8 rounding
    assert diff.max() <= 3.0  # edge columns: the crop-first resize cannot see beyond the crop


def _recompute(npz: dict[str, np.ndarray]) -> dict[str, float]:
    label, cv, cs = npz["label"], npz["clip_video"], npz["clip_scores"]
    video_scores = np.stack([cs[cv == i].mean(axis=0) for i in range(len(label))])
    pred = video_scores.argmax(axis=1)
    k = min(5, cs.shape[1])
    top5 = [label[i] in np.argsort(-video_scores[i])[:k] for i in range(len(label))]
    per_class = [np.mean(pred[label == c] == c) for c in sorted(set(label.tolist()))]
    return {"top1": float(np.mean(pred == label)), "top5": float(np.mean(top5)),
            "clip_top1": float(np.mean(cs.argmax(axis=1) == label[cv])), "mean_class_top1": float(np.mean(per_class)),
            "pred": pred}


@pytest.mark.parametrize("views, per_clip", [("hara", 1), ("mmaction_10x3", 3)])
def test_metrics_recomputed_from_scores_npz(tmp_path: Path, views: str, per_clip: int) -> None:
    frames_dir = write_store(tmp_path)
    out = tmp_path / "eval"
    metrics = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, views, out, variant="probe", progress=False)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    npz = dict(np.load(out / "scores.npz", allow_pickle=False))
    assert npz["video"].tolist() == list(VIDEOS)
    assert npz["label"].tolist() == [v[3] for v in VIDEOS.values()]
    assert npz["clip_scores"].dtype == np.float32 and npz["clip_scores"].shape[1] == N_CLASSES
    positions = {v: (math.ceil(t / CLIP_LEN) if views == "hara" else 10) for v, (t, *_rest) in VIDEOS.items()}
    counts = np.bincount(npz["clip_video"], minlength=len(VIDEOS))
    assert counts.tolist() == [positions[v] * per_clip for v in VIDEOS]  # hara: ceil(n / L) clips, no tail dropped
    assert npz["clip_view"].tolist() == [j for v in VIDEOS for _ in range(positions[v]) for j in range(per_clip)]
    if views == "hara":
        assert npz["clip_start"][npz["clip_video"] == 0].tolist() == [0, 8, 16]
    again = _recompute(npz)
    for key in ("top1", "top5", "clip_top1", "mean_class_top1"):
        assert metrics[key] == pytest.approx(again[key], abs=1e-12), key
    assert metrics["top1"] == 0.4 and metrics["top5"] == 0.8 and metrics["mean_class_top1"] == 0.25
    assert 0 < metrics["clip_top1"] < 1
    assert metrics["clips"] == int(counts.sum()) and metrics["views"] == views and metrics["variant"] == "probe"
    assert metrics["videos"] == metrics["videos_evaluated"] == metrics["videos_listed"] == len(VIDEOS)
    assert metrics["videos_excluded"] == 0
    preds = pd.read_csv(out / "predictions.csv")
    assert preds["pred"].tolist() == again["pred"].tolist()
    assert preds["correct"].mean() == pytest.approx(metrics["top1"])
    assert preds["correct_top5"].mean() == pytest.approx(metrics["top5"])
    assert preds["clips"].tolist() == counts.tolist()
    assert "crop_area" in metrics and "crop_area" in preds.columns  # the scorer's per-clip extras
    image = matplotlib.image.imread(out / "confusion.png")
    assert image.ndim == 3 and min(image.shape[:2]) >= 400


def test_mmaction_views_differ_and_hara_is_the_default(tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path)
    hara = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", tmp_path / "h", progress=False)
    mm = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "mmaction_10x3", tmp_path / "m", progress=False)
    s = np.load(tmp_path / "m" / "scores.npz")["clip_scores"].reshape(-1, 3, N_CLASSES)
    assert not np.allclose(s[:, 0], s[:, 2])  # left and right crops see different pixels
    assert hara["clips"] == 3 + 2 + 2 + 1 + 3 and mm["clips"] == 5 * 30
    assert EvalConfig().views == "hara"
    limited = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "mmaction_10x3", tmp_path / "l",
                              max_clips=2, progress=False)
    assert limited["clips"] == 5 * 2 * 3  # eval.max_clips: the first clips, all their crops


def test_excluded_videos_are_counted_and_shown_in_table6(tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path, excluded={"broken": "decode error: moov atom not found", "gone": "missing file"})
    out = tmp_path / "results/eval/synthetic/split1/single"
    with pytest.warns(UserWarning, match="skipping 2 of 7 videos"):
        metrics = evaluate_videos(crop_scorer, make_df(("broken", "gone")), frames_dir, CLIP_LEN, "hara", out,
                                  variant="single", progress=False)
    assert (metrics["videos_listed"], metrics["videos_evaluated"], metrics["videos_excluded"]) == (7, 5, 2)
    assert metrics["videos"] == 5 and len(pd.read_csv(out / "predictions.csv")) == 5
    clean = tmp_path / "results/eval/synthetic/split2/single"
    evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", clean, variant="single", progress=False)
    write_table6([out / "metrics.json", clean / "metrics.json"], ["single"], tmp_path / "t6.tex", tmp_path / "t6.csv")
    long = pd.read_csv(tmp_path / "t6_metrics.csv").set_index("split")
    assert long.loc[1, "videos_excluded"] == 2 and long.loc[2, "videos_excluded"] == 0
    assert long.loc[1, "videos_listed"] == 7 and long.loc[1, "videos_evaluated"] == 5
    tex = (tmp_path / "t6.tex").read_text()
    assert "synthetic split 1: 5 of 7" in tex and "split 2:" not in tex
    evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", out, variant="single", progress=False)
    write_table6([out / "metrics.json", clean / "metrics.json"], ["single"], tmp_path / "t6.tex", tmp_path / "t6.csv")
    assert "excluded at frame extraction" not in (tmp_path / "t6.tex").read_text()


def test_confusion_matrix_rows_normalised() -> None:
    m = confusion_matrix(np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 1, 1, 0, 2]), 4)
    np.testing.assert_allclose(m, [[1 / 3, 2 / 3, 0, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 0]])


@pytest.fixture(scope="module")
def tiny_asnet(tiny_workdir: Path) -> Path:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    out = tiny_workdir / "eval_protocol_run"
    return train_run(cfg, tiny_workdir / paths.manifest("synthetic_tiny", 1),
                     tiny_workdir / paths.frames_dir("synthetic_tiny"), out, "asnet", progress=False)


def test_trained_asnet_under_both_views(tiny_workdir: Path, tiny_asnet: Path) -> None:
    manifest = tiny_workdir / paths.manifest("synthetic_tiny", 1)
    frames_dir = tiny_workdir / paths.frames_dir("synthetic_tiny")
    hara_dir, mm_dir = tiny_asnet.parent / "eval_hara", tiny_asnet.parent / "eval_mm"
    hara = evaluate_run(tiny_asnet, manifest, frames_dir, hara_dir, threads=1, progress=False)
    mm = evaluate_run(tiny_asnet, manifest, frames_dir, mm_dir, threads=1, progress=False,
                      eval_cfg=EvalConfig(views="mmaction_10x3"))
    for out, metrics in ((hara_dir, hara), (mm_dir, mm)):
        assert (out / "confusion.png").stat().st_size > 0
        again = _recompute(dict(np.load(out / "scores.npz")))
        assert metrics["top1"] == pytest.approx(again["top1"]) and metrics["top5"] == pytest.approx(again["top5"])
        assert {"iou_spa", "iou_center", "iou_random"} <= set(metrics)
    assert hara["views"] == "hara" and mm["views"] == "mmaction_10x3"
    assert mm["clips"] == 30 * mm["videos"]
    # The centre crop of an MMAction2 clip starting where one of Hara's clips starts scores the
    # same: same frames, same context crop and the same per-clip SPA box (shared by the 3 crops).
    h, m = np.load(hara_dir / "scores.npz"), np.load(mm_dir / "scores.npz")
    matched = 0
    for i in range(len(h["video"])):
        h_rows = np.flatnonzero(h["clip_video"] == i)
        m_rows = np.flatnonzero((m["clip_video"] == i) & (m["clip_view"] == 1))
        for r in m_rows:
            same = h_rows[h["clip_start"][h_rows] == m["clip_start"][r]]
            if len(same):
                np.testing.assert_allclose(m["clip_scores"][r], h["clip_scores"][same[0]], atol=1e-5)
                matched += 1
    assert matched == 4 * len(h["video"])  # 16 frames, L = 4: MMAction2 starts 0, 4, 8, 12 are Hara's


def test_unknown_views_is_a_config_error_naming_the_key() -> None:
    from asnet.config import ConfigError

    with pytest.raises(ConfigError, match=r"eval\.views: 'tencrop' is not one of \['hara', 'mmaction_10x3'\]"):
        load_config(overrides=["preset=tiny", "eval.views=tencrop"])
    assert load_config(overrides=["preset=tiny", "eval.views=mmaction_10x3"]).eval.views == "mmaction_10x3"


def test_scorer_may_return_scores_only_and_bad_shapes_are_named(tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path)
    plain = evaluate_videos(lambda *a: crop_scorer(*a)[0], make_df(), frames_dir, CLIP_LEN, "hara", tmp_path / "p",
                            progress=False)
    full = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", tmp_path / "f", progress=False)
    assert {k: v for k, v in full.items() if k != "crop_area"} == plain
    with pytest.raises(ValueError, match=r"expected \(3, 1, C\)"):
        evaluate_videos(lambda *a: crop_scorer(*a)[0][:, 0], make_df(), frames_dir, CLIP_LEN, "hara", tmp_path / "b",
                        progress=False)
