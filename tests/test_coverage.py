"""Coverage of the official split lists: recorded by prepare on a real UCF-101 layout (the
official lists, one small decodable video per class for training and a few test videos,
the rest missing), carried into metrics.json, the captions and the audit; an empty or
class-dropping manifest stops prepare; the anchor check's flag is a sentence wherever it
is shown."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from archive_fixtures import tiny_avi_bytes
from test_evaluate import CLIP_LEN, crop_scorer, make_df, write_store
from test_splits import _real_lists_dir

from asnet import paths, stages
from asnet.config import Config, ConfigError, load_config
from asnet.data.splits import parse_ucf101_split, read_coverage
from asnet.report.anchor import FLAG, flag_sentence
from asnet.report.audit import coverage_lines
from asnet.report.tables import write_experiment_table, write_table6
from asnet.train.evaluate import evaluate_videos

OFFICIAL_TEST_SPLIT1 = 3783
OFFICIAL_TRAIN_SPLIT1 = 9537
N_TEST = 3  # test videos present on disk


def _config(root: str, splits_dir: Path, allow_missing: bool = True, **report: object) -> Config:
    entry = f"{{name: ucf101, kind: ucf101, root: '{root}', splits_dir: '{splits_dir}', allow_missing: {str(allow_missing).lower()}}}"
    extra = [f"report.{k}={v}" for k, v in report.items()]
    return load_config(overrides=["preset=tiny", f"datasets=[{entry}]", "splits=[1]", *extra])


def _layout(tmp: Path, drop_class: str | None = None) -> Path:
    """UCF-101's folder layout under tmp/UCF-101: the first training video of every class of
    split 1 and the first N_TEST test videos, as copies of one small real video."""
    lists = parse_ucf101_split(_real_lists_dir(), 1)
    train = lists[lists["subset"] == "train"].groupby("class_name").head(1)
    test = lists[lists["subset"] == "test"].head(N_TEST)
    data = tiny_avi_bytes(0)
    root = tmp / "UCF-101"
    for rel, cls in zip([*train["path"], *test["path"]], [*train["class_name"], *test["class_name"]], strict=True):
        if cls == drop_class:
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.chdir(tmp_path)
    _layout(tmp_path)
    cfg = _config("UCF-101", _real_lists_dir())
    stages.prepare(cfg, "ucf101", progress=False)
    return cfg


def test_prepare_records_coverage_against_the_official_lists(prepared: Config, caplog) -> None:
    record = json.loads(paths.coverage("ucf101", 1).read_text())
    assert record["test"] == {"listed": OFFICIAL_TEST_SPLIT1, "present": N_TEST, "missing": OFFICIAL_TEST_SPLIT1 - N_TEST}
    assert record["train"] == {"listed": OFFICIAL_TRAIN_SPLIT1, "present": 101, "missing": OFFICIAL_TRAIN_SPLIT1 - 101}
    assert record["classes"]["official"] == record["classes"]["present"] == 101
    assert record["allow_missing"] is True and record["synthetic"] is False
    assert read_coverage(paths.manifest("ucf101", 1)) == record
    assert len(pd.read_csv(paths.manifest("ucf101", 1))) == 101 + N_TEST


def test_prepare_prints_the_coverage_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.chdir(tmp_path)
    _layout(tmp_path)
    with caplog.at_level("INFO", logger="asnet.stages"):
        stages.prepare(_config("UCF-101", _real_lists_dir()), "ucf101", progress=False)
    assert f"test {N_TEST} of {OFFICIAL_TEST_SPLIT1} listed" in caplog.text
    assert "classes 101 of 101; datasets[ucf101].allow_missing is on" in caplog.text


def test_root_one_level_too_high_fails_at_prepare_naming_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _layout(tmp_path / "download")
    with pytest.raises(ConfigError, match=r"datasets\[ucf101\]\.root: none of the 13320 videos") as exc:
        stages.prepare(_config("download", _real_lists_dir()), "ucf101", progress=False)
    assert "allow_missing" in str(exc.value) and "directly holds the class folders" in str(exc.value)
    assert not paths.manifest("ucf101", 1).exists() and not paths.coverage("ucf101", 1).exists()


def test_a_class_without_training_videos_fails_at_prepare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _layout(tmp_path, drop_class="YoYo")  # the highest label: the class count would drop silently
    with pytest.raises(ConfigError, match=r"datasets\[ucf101\]\.root: 1 of 101 classes of split 1 have no training "
                                          r"video .*\(YoYo\)"):
        stages.prepare(_config("UCF-101", _real_lists_dir()), "ucf101", progress=False)
    assert not paths.manifest("ucf101", 1).exists()


def test_metrics_and_captions_count_official_test_videos(prepared: Config, tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path / "store")
    record = read_coverage(paths.manifest("ucf101", 1))
    out = tmp_path / "results/eval/ucf101/split1/single"
    metrics = evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", out, variant="single",
                              progress=False, coverage=record)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["videos_official"] == OFFICIAL_TEST_SPLIT1 and saved["allow_missing"] is True
    assert metrics["videos_listed"] == 5  # the reduced list, kept beside the official count
    write_table6([out / "metrics.json"], ["single"], tmp_path / "t6.tex", tmp_path / "t6.csv")
    tex = (tmp_path / "t6.tex").read_text()
    assert f"ucf101 split 1: 5 of {OFFICIAL_TEST_SPLIT1} official test videos (allow\\_missing)" in tex
    assert "not comparable" in tex
    rows = [{"dataset": "ucf101", "variant": "single", "metrics": out / "metrics.json", "baseline": out / "metrics.json",
             "paper_row": "single", "paper_col": "top1_split1", "run": "single"}]
    write_experiment_table("table1", rows, tmp_path / "table1.tex")
    assert f"5 of {OFFICIAL_TEST_SPLIT1} official test videos" in (tmp_path / "table1.tex").read_text()


def test_synthetic_captions_stay_as_they_were(tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path / "store")
    out = tmp_path / "results/eval/synthetic/split1/single"
    complete = {"test": {"listed": 5}, "allow_missing": False, "synthetic": True}
    evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", out, variant="single", progress=False,
                    coverage=complete)
    write_table6([out / "metrics.json"], ["single"], tmp_path / "a/t6.tex", tmp_path / "a/t6.csv")
    evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", out, variant="single", progress=False)
    write_table6([out / "metrics.json"], ["single"], tmp_path / "b/t6.tex", tmp_path / "b/t6.csv")
    assert (tmp_path / "a/t6.tex").read_text() == (tmp_path / "b/t6.tex").read_text()
    assert (tmp_path / "a/t6.csv").read_text() == (tmp_path / "b/t6.csv").read_text()
    assert "Coverage" not in (tmp_path / "a/t6.tex").read_text()


def test_audit_refuses_the_paper_below_min_coverage(prepared: Config) -> None:
    lines, below = coverage_lines(prepared)
    assert any(f"{N_TEST} of {OFFICIAL_TEST_SPLIT1} official test videos (allow_missing)" in line for line in lines)
    assert "below report.min_coverage 1" in below["ucf101"]
    lax = _config("UCF-101", _real_lists_dir(), min_coverage=0.0)
    lines, below = coverage_lines(lax)
    assert below == {} and any(f"of {OFFICIAL_TEST_SPLIT1} official" in line for line in lines)


def test_absolute_claim_not_compared_below_coverage() -> None:
    from asnet.report.audit import Claim, absolute_claim

    pred = pd.DataFrame({"correct": [1, 0, 1, 1]})
    claim = Claim("1", "top-1", "Table 6", "95.1")
    absolute_claim(claim, [("ucf101", "single", pred, 95.1)], {"ucf101": "not compared with the paper: 4 of 3783"})
    assert claim.verdict == "not compared" and "4 of 3783" in claim.details[0]


def _anchor_csv(path: Path, flag: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"file": "resnext-101-kinetics-ucf101_split1.pth", "evaluated_on": "ucf101", "status": "evaluated",
                   "top1": 40.0, "reported_top1": 90.7, "diff": -50.7, "flag": flag, "videos_listed": 3,
                   "videos_evaluated": 3, "videos_official": 3783}]).to_csv(path, index=False)
    return path


def test_anchor_flag_is_a_sentence_in_table6_and_the_audit(prepared: Config, tmp_path: Path) -> None:
    csv = _anchor_csv(tmp_path / "results/anchor_check.csv", flag=True)
    assert flag_sentence(csv) == f"Anchor check: {FLAG}."
    assert flag_sentence(tmp_path / "absent.csv") == ""
    frames_dir = write_store(tmp_path / "store")
    out = tmp_path / "results/eval/ucf101/split1/single"
    evaluate_videos(crop_scorer, make_df(), frames_dir, CLIP_LEN, "hara", out, variant="single", progress=False)
    write_table6([out / "metrics.json"], ["single"], tmp_path / "t6.tex", tmp_path / "t6.csv",
                 anchor_sentence=flag_sentence(csv))
    assert FLAG in " ".join((tmp_path / "t6.tex").read_text().split())
    # the audit with no other table built: the sentence still heads it
    stages.audit(prepared, tmp_path / "results/audit.md")
    md = (tmp_path / "results/audit.md").read_text()
    assert f"**Anchor check: {FLAG}.**" in md
    assert f"{N_TEST} of {OFFICIAL_TEST_SPLIT1} official test videos (allow_missing)" in md
    _anchor_csv(csv, flag=False)
    assert "within tolerance" in flag_sentence(csv)


def test_table6_waits_for_the_anchor_check_only_when_it_runs(prepared: Config, tmp_path: Path) -> None:
    assert stages.ANCHOR_CSV not in stages.table6_inputs(prepared)
    anchor_dir = tmp_path / "pretrained"
    anchor_dir.mkdir()
    (anchor_dir / "resnext-101-kinetics-ucf101_split1.pth").write_bytes(b"")
    cfg = _config("UCF-101", _real_lists_dir(), anchor_dir=str(anchor_dir))
    assert stages.ANCHOR_CSV in stages.table6_inputs(cfg)
    shutil.rmtree(anchor_dir)
