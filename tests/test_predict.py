"""`asnet predict` (asnet.predict): a tiny trained ASNet on the synthetic test videos' raw
files gives exactly the scores `evaluate` wrote for them; the CSV, the .npz, the annotated MP4
(decodable, the input's frame count) and the contact sheet; one error line per bad input,
the other files still scored, exit status 2."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from asnet import paths
from asnet.cli import main
from asnet.config import load_config
from asnet.data.synthetic import write_video
from asnet.train.evaluate import evaluate_run
from asnet.train.loop import train_run

TINY = ["--set", "preset=tiny", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tiny_workdir: Path) -> Path:
    """A 1-epoch ASNet run on the tiny synthetic split 1 and its evaluation beside it."""
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    manifest = tiny_workdir / paths.manifest("synthetic_tiny", 1)
    frames = tiny_workdir / paths.frames_dir("synthetic_tiny")
    model = train_run(cfg, manifest, frames, tiny_workdir / "predict_run", "asnet", progress=False)
    evaluate_run(model, manifest, frames, model.parent / "eval", threads=1, progress=False)
    return model


def _test_videos(workdir: Path) -> pd.DataFrame:
    m = pd.read_csv(workdir / paths.manifest("synthetic_tiny", 1))
    m = m[m["subset"] == "test"].reset_index(drop=True)
    return m.assign(file=[workdir / paths.raw_dir("synthetic_tiny") / "videos" / p for p in m["path"]])


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_predict_equals_evaluate_and_annotates(tiny_workdir: Path, tiny_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    videos = _test_videos(tiny_workdir)
    out, ann = tmp_path / "pred.csv", tmp_path / "ann"
    rc = main(["predict", *map(str, videos["file"]), "--model", str(tiny_run), "--top-k", "2", "--out", str(out),
               "--annotate", str(ann), *TINY])
    printed = capsys.readouterr().out
    assert rc == 0
    ev = np.load(tiny_run.parent / "eval" / "scores.npz")
    pr = np.load(out.with_suffix(".npz"))
    assert [Path(v).stem for v in pr["video"]] == list(ev["video"])  # every test video, in the order given
    for key in ("clip_video", "clip_view", "clip_start"):
        np.testing.assert_array_equal(pr[key], ev[key])
    # The same decoder, frames, clips, crops, SPA episode and model: bit-identical scores.
    assert torch.equal(torch.from_numpy(pr["clip_scores"]), torch.from_numpy(ev["clip_scores"]))
    assert np.isfinite(pr["clip_box"]).all() and pr["clip_box"].shape == (len(pr["clip_video"]), 4)
    assert list(pr["classes"]) == ["SwingHorizontal", "SwingVertical", "Circle"]
    rows = pd.read_csv(out)
    assert len(rows) == 2 * len(videos) and list(rows.columns[:5]) == ["video", "rank", "class", "label", "prob"]
    preds = pd.read_csv(tiny_run.parent / "eval" / "predictions.csv")
    top1 = rows[rows["rank"] == 1].reset_index(drop=True)
    np.testing.assert_array_equal(top1["label"], preds["pred"])
    assert all(str(f) in printed for f in videos["file"]) and "SPA box per clip" in printed
    for f in videos["file"][:2]:
        mp4, sheet = ann / f"{f.stem}.mp4", ann / f"{f.stem}_sheet.png"
        assert _frame_count(mp4) == _frame_count(f)  # 25 fps in, 25 fps out: every input frame
        assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sheet.stat().st_size > 1000


def test_bad_inputs_one_line_each_others_scored(tiny_workdir: Path, tiny_run: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    good = _test_videos(tiny_workdir)["file"][0]
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.avi"
    empty.touch()
    garbage = tmp_path / "broken.avi"
    garbage.write_bytes(good.read_bytes()[:200])  # a header cut short: nothing decodes
    short = tmp_path / "short.avi"  # 3 frames; the model's clips are 4
    write_video(short, np.full((3, 48, 64, 3), 128, np.uint8), 25)
    out = tmp_path / "p.csv"
    rc = main(["predict", str(text), str(empty), str(good), str(garbage), str(short), str(tmp_path / "missing.mp4"),
               "--model", str(tiny_run), "--out", str(out), *TINY])
    # Ours, one per file (the decoding libraries in the workers may print their own messages too).
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("asnet predict: error: ")]
    assert rc == 2
    assert len(err) == 5, err
    expect = {text: "not a video", empty: "empty (0-byte)", garbage: "not a video", short: "at least 0.16 s",
              tmp_path / "missing.mp4": "no such file"}
    for path, what in expect.items():
        assert sum(f"{path}:" in ln and what in ln for ln in err) == 1, (path, err)
    assert set(pd.read_csv(out)["video"]) == {str(good)}


def test_bad_model_files_are_one_line(tiny_workdir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = str(_test_videos(tiny_workdir)["file"][0])
    text = tmp_path / "model.pt"
    text.write_text("not a checkpoint")
    state = tmp_path / "last.pt"
    torch.save({"epoch": 1, "weights": torch.zeros(2)}, state)
    for model, what in ((text, "not a checkpoint that loads safely"), (state, "not a trained run's model.pt"),
                        (tmp_path / "none.pt", "no such model file")):
        assert main(["predict", good, "--model", str(model), *TINY]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"asnet predict: error: {model}") and what in err[0], err


@pytest.mark.slow
def test_published_hara_file_uses_its_own_protocol(tiny_workdir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A file named like Hara et al.'s fine-tuned UCF-101 model (random weights, their layout):
    16-frame clips, 101 classes, names of the dataset report.anchor_datasets maps to."""
    from asnet.models.resnet3d import BackboneSpec, build_backbone

    torch.manual_seed(0)
    net = build_backbone(BackboneSpec(arch="resnext", depth=101, width=64, cardinality=32, shortcut="B"), 101)
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    file = tmp_path / "resnext-101-kinetics-ucf101_split1.pth"
    torch.save({"epoch": 100, "arch": "resnext-101", "state_dict": state, "optimizer": {}}, file,
               _use_new_zipfile_serialization=False)
    video = _test_videos(tiny_workdir)["file"][0]
    out = tmp_path / "p.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tiny_workdir)  # data/synthetic_tiny/manifests/split1.csv names the classes
        rc = main(["predict", str(video), "--model", str(file), "--out", str(out), *TINY,
                   "--set", "report.anchor_datasets={ucf101: synthetic_tiny}"])
    assert rc == 0, capsys.readouterr().err
    npz = np.load(out.with_suffix(".npz"))
    assert npz["clip_scores"].shape == (1, 101)  # 16 frames: one 16-frame clip, one view
    assert list(npz["classes"][:3]) == ["SwingHorizontal", "SwingVertical", "Circle"] and npz["classes"][3] == "class3"
    assert np.isnan(npz["clip_box"]).all() and len(pd.read_csv(out)) == 5


def test_annotation_keeps_the_input_frame_rate(tiny_run: Path, tmp_path: Path) -> None:
    """A 50-fps input is scored at the run's 25 fps; its annotated MP4 has every input frame."""
    t = np.arange(40)[:, None, None, None]
    video = tmp_path / "fast.avi"
    write_video(video, np.broadcast_to((t * 6 % 256).astype(np.uint8), (40, 48, 64, 3)).copy(), 50)
    (tmp_path / "README.txt").write_text("a folder's other files are not inputs\n")
    # A folder: its video files.
    assert main(["predict", str(tmp_path), "--model", str(tiny_run), "--annotate", str(tmp_path / "ann"), *TINY]) == 0
    assert _frame_count(tmp_path / "ann" / "fast.mp4") == _frame_count(video) == 40
