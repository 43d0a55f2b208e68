"""Tests for split-list parsing and manifest building (real UCF-101 lists + crafted files)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from asnet.data.splits import (
    MANIFEST_COLUMNS,
    MissingVideosError,
    build_manifest,
    parse_hmdb51_split,
    parse_ucf101_split,
    read_class_index,
    write_manifest,
)


def _real_lists_dir() -> Path:
    env = os.environ.get("ASNET_SHARED")
    candidates = [Path(__file__).resolve().parents[2] / "shared"]
    if env:
        candidates.insert(0, Path(env))
    for base in candidates:
        d = base / "datasets/ucf101/ucfTrainTestlist"
        if d.is_dir():
            return d
    pytest.skip(
        f"official UCF-101 split lists not found in {[str(c) for c in candidates]} (set ASNET_SHARED)"
    )


@pytest.mark.parametrize(("split", "n_train", "n_test"), [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_real_ucf101_counts(split: int, n_train: int, n_test: int) -> None:
    d = _real_lists_dir()
    assert len(read_class_index(d / "classInd.txt")) == 101
    df = parse_ucf101_split(d, split)
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert (df["subset"] == "train").sum() == n_train
    assert (df["subset"] == "test").sum() == n_test
    assert df["class_name"].nunique() == 101
    assert sorted(df["label"].unique()) == list(range(101))
    assert len(df) == 13320 and df["video"].is_unique
    # UCF-101 holds out g01-07 / g08-14 / g15-21
    groups = df.loc[df["subset"] == "test", "video"].str.extract(r"_g(\d\d)_")[0].astype(int)
    assert groups.between(7 * split - 6, 7 * split).all()
    row = df[df["video"] == "v_ApplyEyeMakeup_g08_c01"].iloc[0]
    assert row["path"] == "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"
    assert row["label"] == 0 and row["class_name"] == "ApplyEyeMakeup"


# --------------------------------------------------------------------------- crafted lists

CLASSES = ["Archery", "HandStandPushups", "YoYo"]
TRAIN = [f"{c}/v_{c}_g02_c0{k}.avi {i + 1}" for i, c in enumerate(CLASSES) for k in (1, 2)]
TEST = [f"{c}/v_{c}_g01_c01.avi" for c in CLASSES]


def _write(path: Path, lines: list[str], eol: str = "\r\n", final: bool = True) -> None:
    text = eol.join(lines) + (eol if final else "")
    path.write_bytes(text.encode())


def _make_lists(
    d: Path,
    train: list[str] | None = None,
    test: list[str] | None = None,
    eol: str = "\r\n",
    final: bool = True,
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    _write(d / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(CLASSES)], eol, final)
    _write(d / "trainlist01.txt", TRAIN if train is None else train, eol, final)
    _write(d / "testlist01.txt", TEST if test is None else test, eol, final)
    return d


def _make_videos(root: Path, rels: list[str]) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"not a real video; only existence is checked")


@pytest.mark.parametrize(("eol", "final"), [("\r\n", True), ("\n", True), ("\n", False), ("\r\n", False)])
def test_line_ending_tolerance(tmp_path: Path, eol: str, final: bool) -> None:
    reference = parse_ucf101_split(_make_lists(tmp_path / "ref"), 1)
    df = parse_ucf101_split(_make_lists(tmp_path / "x", eol=eol, final=final), 1)
    pd.testing.assert_frame_equal(df, reference)
    assert len(df) == 9 and (df["subset"] == "test").sum() == 3
    assert df.loc[df["video"] == "v_YoYo_g02_c01", "label"].item() == 2
    assert df.loc[df["video"] == "v_HandStandPushups_g01_c01", "class_name"].item() == "HandStandPushups"


def test_blank_lines_trailing_spaces_and_test_labels(tmp_path: Path) -> None:
    reference = parse_ucf101_split(_make_lists(tmp_path / "ref"), 1)
    train = ["", *[f"{line}   " for line in TRAIN], "  ", ""]
    test = [f"{line} {i + 1} " for i, line in enumerate(TEST)]  # label column on the test list
    df = parse_ucf101_split(_make_lists(tmp_path / "x", train=train, test=test), 1)
    pd.testing.assert_frame_equal(df, reference)


def test_wrong_label_on_test_list_is_an_error(tmp_path: Path) -> None:
    test = [TEST[0] + " 1", TEST[1] + " 3", TEST[2] + " 3"]
    d = _make_lists(tmp_path, test=test)
    with pytest.raises(ValueError, match=r"testlist01\.txt:2: label 3 \(YoYo\) disagrees .*HandStandPushups"):
        parse_ucf101_split(d, 1)


def test_train_label_mismatch_names_file_and_line(tmp_path: Path) -> None:
    train = list(TRAIN)
    train[3] = "HandStandPushups/v_HandStandPushups_g02_c02.avi 1"
    d = _make_lists(tmp_path, train=train)
    with pytest.raises(ValueError, match=r"trainlist01\.txt:4: label 1 \(Archery\) disagrees"):
        parse_ucf101_split(d, 1)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("Archery/v_Archery_g03_c01.avi 1 extra", "expected '<Class>/<video>.avi"),
        ("v_Archery_g03_c01.avi 1", "expected a path"),
        ("Archery/v_Archery_g03_c01.mp4 1", "expected a path"),
        ("Archery/v_Archery_g03_c01.avi one", "not a positive integer"),
        ("Bowling/v_Bowling_g03_c01.avi 1", "'Bowling' is not in classInd"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    train = [*TRAIN[:2], bad, *TRAIN[2:]]
    d = _make_lists(tmp_path, train=train)
    with pytest.raises(ValueError, match=r"trainlist01\.txt:3: ") as info:
        parse_ucf101_split(d, 1)
    assert message in str(info.value)


def test_video_in_train_and_test_is_an_error(tmp_path: Path) -> None:
    d = _make_lists(tmp_path, test=[*TEST, TRAIN[0].split()[0]])
    with pytest.raises(
        ValueError, match=r"v_Archery_g02_c01 is listed twice: .*trainlist01\.txt:1.*testlist01\.txt:4"
    ):
        parse_ucf101_split(d, 1)


def test_duplicate_and_malformed_class_index(tmp_path: Path) -> None:
    p = tmp_path / "classInd.txt"
    _write(p, ["1 A", "2 B", "2 C"])
    with pytest.raises(ValueError, match=r"classInd\.txt:3: class index 2 appears twice"):
        read_class_index(p)
    _write(p, ["1 A", "2"])
    with pytest.raises(ValueError, match=r"classInd\.txt:2: expected"):
        read_class_index(p)


def test_case_insensitive_class_folder(tmp_path: Path) -> None:
    d = _make_lists(tmp_path / "lists")
    root = tmp_path / "UCF-101"
    rels = [line.split()[0] for line in TRAIN + TEST]
    # the real archive spells this folder HandstandPushups, the lists HandStandPushups
    _make_videos(root, [r.replace("HandStandPushups/", "HandstandPushups/") for r in rels])
    df = build_manifest("ucf101", root, d, 1)
    assert len(df) == 9
    hs = df[df["class_name"] == "HandStandPushups"]
    assert len(hs) == 3
    assert hs["path"].str.startswith("HandstandPushups/v_HandStandPushups_").all()
    assert all((root / p).is_file() for p in df["path"])


def test_missing_videos_error_and_allow_missing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    train = [f"Archery/v_Archery_g{g:02d}_c01.avi 1" for g in range(2, 32)]
    d = _make_lists(tmp_path / "lists", train=train)
    root = tmp_path / "videos"
    present = train[:5] + TEST
    _make_videos(root, [line.split()[0] for line in present])
    with pytest.raises(MissingVideosError) as info:
        build_manifest("ucf101", root, d, 1)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "25 of 33 videos listed in split 1 are missing" in msg
    assert "Archery/v_Archery_g07_c01.avi" in msg  # first missing
    assert "Archery/v_Archery_g26_c01.avi" in msg  # 20th missing
    assert "Archery/v_Archery_g27_c01.avi" not in msg  # only the first 20 are listed
    assert "and 5 more" in msg and "pass allow_missing=True to drop" in msg and str(root) in msg
    assert len(info.value.missing) == 25

    with caplog.at_level(logging.WARNING, logger="asnet.data.splits"):
        df = build_manifest("ucf101", root, d, 1, allow_missing=True)
    assert len(df) == 8 and (df["subset"] == "test").sum() == 3
    assert "25 of 33 videos" in caplog.text and "Archery/v_Archery_g07_c01.avi" in caplog.text


def test_build_manifest_without_root_and_unknown_dataset(tmp_path: Path) -> None:
    d = _make_lists(tmp_path)
    pd.testing.assert_frame_equal(build_manifest("ucf101", None, d, 1), parse_ucf101_split(d, 1))
    with pytest.raises(ValueError, match="unknown dataset"):
        build_manifest("kinetics", None, d, 1)
    with pytest.raises(ValueError, match="split must be"):
        parse_ucf101_split(d, 4)


def test_write_manifest_roundtrip(tmp_path: Path) -> None:
    df = parse_ucf101_split(_make_lists(tmp_path / "lists"), 1)
    out = tmp_path / "out" / "manifest.csv"
    write_manifest(df, out)
    assert out.read_text().splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    pd.testing.assert_frame_equal(pd.read_csv(out), df)


def test_hmdb51_split(tmp_path: Path) -> None:
    d = tmp_path / "testTrainMulti_7030_splits"
    d.mkdir()
    # HMDB-51 names contain odd characters; lines end with a trailing space
    _write(
        d / "wave_test_split1.txt",
        ["Wave_hello_(1)_wave_u_cm_np1_fr_med_0.avi 1 ", "bye#2_wave_f_nm_np1_le_goo_1.avi 2 "],
    )
    _write(
        d / "clap_test_split1.txt", ["clap_a.avi 2 ", "clap_b.avi 0 ", "clap_c.avi 1 "], eol="\n", final=False
    )
    _write(d / "clap_test_split2.txt", ["clap_a.avi 1 "])
    df = parse_hmdb51_split(d, 1)
    assert list(df.columns) == list(MANIFEST_COLUMNS)
    assert df["subset"].tolist() == ["train", "train", "test", "test"]
    assert df["video"].tolist() == [
        "clap_c",
        "Wave_hello_(1)_wave_u_cm_np1_fr_med_0",
        "clap_a",
        "bye#2_wave_f_nm_np1_le_goo_1",
    ]
    assert df["label"].tolist() == [0, 1, 0, 1]  # alphabetical class order
    assert df["path"].iloc[1] == "wave/Wave_hello_(1)_wave_u_cm_np1_fr_med_0.avi"
    assert len(parse_hmdb51_split(d, 2)) == 1

    _write(d / "clap_test_split3.txt", ["clap_a.avi 3 "])
    with pytest.raises(ValueError, match=r"clap_test_split3\.txt:1: expected"):
        parse_hmdb51_split(d, 3)

    root = tmp_path / "hmdb51"
    _make_videos(root, df["path"].tolist()[:3])
    with pytest.raises(MissingVideosError, match="1 of 4 videos"):
        build_manifest("hmdb51", root, d, 1)


# --------------------------------------------------------------------------- messages through the config


def _ucf_config(root: Path, splits_dir: Path, **entry: object):
    """The tiny preset with one ucf101-kind dataset at root/splits_dir (a list replaces the preset's)."""
    from asnet.config import load_config

    fields = {"name": "ucf_tiny", "kind": "ucf101", "root": str(root), "splits_dir": str(splits_dir), **entry}
    text = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower()}" for k, v in fields.items())
    return load_config(overrides=["preset=tiny", f"datasets=[{{{text}}}]"])


def test_split_file_in_a_subfolder_is_pointed_at(tmp_path: Path) -> None:
    lists = _make_lists(tmp_path / "raw" / "ucfTrainTestlist")
    with pytest.raises(FileNotFoundError) as info:
        parse_ucf101_split(tmp_path / "raw", 1)
    assert str(info.value) == (f"split file not found: {tmp_path / 'raw' / 'classInd.txt'} (classInd.txt is in "
                               f"{lists}: is that the split lists' folder?)")


def test_prepare_names_splits_dir_when_the_lists_are_not_in_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from asnet import stages
    from asnet.config import ConfigError

    monkeypatch.chdir(tmp_path)
    lists = _make_lists(tmp_path / "raw" / "ucfTrainTestlist")
    _make_videos(tmp_path / "videos", [line.split()[0] for line in TRAIN + TEST])
    cfg = _ucf_config(tmp_path / "videos", tmp_path / "raw")  # the download's parent, not its lists folder
    with pytest.raises(ConfigError) as info:
        stages.prepare(cfg, "ucf_tiny", progress=False)
    msg = str(info.value)
    assert msg.startswith(f"datasets[ucf_tiny].splits_dir: split file not found: {tmp_path / 'raw' / 'classInd.txt'}")
    assert f"classInd.txt is in {lists}" in msg
    assert "should directly hold classInd.txt, trainlist0k.txt, testlist0k.txt" in msg
    assert "set datasets[ucf_tiny].splits_dir in your config" in msg and "--configfile" in msg


def test_prepare_missing_videos_advice_names_the_config_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from asnet import stages

    monkeypatch.chdir(tmp_path)
    lists = _make_lists(tmp_path / "lists")
    # one training video of each class stays (a class with none is another error, see
    # test_coverage.py); two test videos go
    _make_videos(tmp_path / "videos", [line.split()[0] for line in TRAIN + TEST[:1]])
    with pytest.raises(MissingVideosError) as info:
        stages.prepare(_ucf_config(tmp_path / "videos", lists), "ucf_tiny", progress=False)
    msg = str(info.value)
    assert "2 of 9 videos listed in split 1 are missing" in msg
    assert "set datasets[ucf_tiny].allow_missing: true in your config (config/config.yaml" in msg
    assert "allow_missing=True" not in msg
    # the key the message names does drop them
    stages.prepare(_ucf_config(tmp_path / "videos", lists, allow_missing=True), "ucf_tiny", progress=False)
    assert len(pd.read_csv(tmp_path / "data" / "ucf_tiny" / "manifests" / "split1.csv")) == 7


def test_missing_root_names_the_key_without_claiming_config_yaml_holds_it(tmp_path: Path) -> None:
    from asnet import stages
    from asnet.config import ConfigError

    lists = _make_lists(tmp_path / "lists")
    with pytest.raises(ConfigError) as info:
        stages.prepare(_ucf_config(tmp_path / "nowhere", lists), "ucf_tiny", progress=False)
    msg = str(info.value)
    assert f"datasets[ucf_tiny].root: {tmp_path / 'nowhere'} is not a directory" in msg
    assert "fix the path in config/config.yaml" not in msg
    assert "set datasets[ucf_tiny].root in your config (config/config.yaml, or the file given with --config / " \
           "Snakemake's --configfile) to the folder that directly holds the class folders of videos" in msg
