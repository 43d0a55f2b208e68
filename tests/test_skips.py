"""Unreadable store files met in training: validation skips counted and capped
(`train.max_val_skipped`), every skip recorded with its file's identity, a repaired file
noticed (the run's resume point discarded, the store version bumped once), and `asnet
evaluate` refusing an override of a key the trained run fixes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from asnet import paths, stages
from asnet.config import ConfigError, load_config
from asnet.data.store import StoreError
from asnet.train import checkpoint, skips
from asnet.train.loop import _check_val_skipped, split_validation, train_run

DATASET, SPLIT = "synthetic_tiny", 1


def _copy_tiny(tiny_workdir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_workdir / "data", dest / "data")
    return dest


def _victim(cfg, subset: str) -> str:
    """A video of split 1's training (`train`) or held-out validation (`validation`) videos."""
    manifest = pd.read_csv(paths.manifest(DATASET, SPLIT))
    train_df, val_df = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True),
                                        cfg.train.val_fraction, cfg.seed)
    return str((train_df if subset == "train" else val_df)["video"].iloc[0])


def _truncate(video: str) -> tuple[Path, bytes]:
    f = paths.frames_dir(DATASET) / f"{video}.npy"
    data = f.read_bytes()
    f.write_bytes(data[:-1000])
    return f, data


def _train(cfg, run_dir: Path, variant: str = "single") -> dict:
    train_run(stages.run_config(cfg, variant), paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), run_dir,
              variant, progress=False)
    return checkpoint.load(run_dir / "model.pt")


def test_a_skipped_validation_video_is_counted_logged_and_recorded(tiny_workdir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """1 of 3 validation videos truncated, train.max_val_skipped 0.5: the run goes on, every
    epoch logs val_skipped_videos = 1 (history, dvclive, dvclive's metrics.json) and the
    record lists it per epoch with the file's size and mtime when it was skipped."""
    monkeypatch.chdir(_copy_tiny(tiny_workdir, tmp_path))
    cfg = load_config(overrides=["preset=tiny", "train.max_val_skipped=0.5"])
    victim = _victim(cfg, "validation")
    bad, _ = _truncate(victim)
    run_dir = tmp_path / "run"
    history = _train(cfg, run_dir)["history"]
    assert [h["val_skipped_videos"] for h in history] == [1, 1]
    assert all("skipped_videos" not in h for h in history)  # the training videos were all read
    assert json.loads((run_dir / "dvclive" / "metrics.json").read_text())["val_skipped_videos"] == 1
    rec = skips.read_record(run_dir)
    st = bad.stat()
    assert rec[["video", "where", "epoch"]].values.tolist() == [[victim, "validation", 0], [victim, "validation", 1]]
    assert set(rec["size"]) == {st.st_size} and set(rec["mtime_ns"]) == {st.st_mtime_ns}
    assert (rec["file"] == str(bad)).all() and rec["reason"].str.contains("unreadable .npy").all()


def test_an_unreadable_validation_video_stops_the_run_before_training(tiny_workdir: Path, tmp_path: Path) -> None:
    """train.max_val_skipped 0 (the default): one truncated validation file stops `asnet
    train` before the first epoch, one line naming the file and both fixes, exit 2."""
    work = _copy_tiny(tiny_workdir, tmp_path)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        victim = _victim(load_config(overrides=["preset=tiny"]), "validation")
        bad, _ = _truncate(victim)
    finally:
        os.chdir(cwd)
    proc = subprocess.run([sys.executable, "-m", "asnet.cli", "train", "--dataset", DATASET, "--split", str(SPLIT),
                           "--variant", "single", "--no-progress", "--set", "preset=tiny"],
                          cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("asnet train: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    line = errors[0]
    assert "before training: 1 of 3 validation videos are unreadable" in line and str(bad) in line, line
    assert "`asnet extract`" in line and "raise train.max_val_skipped" in line, line
    assert not (work / paths.run_dir(DATASET, SPLIT, "single") / "state" / "last.pt").exists()


def test_validation_skips_over_the_share_stop_at_validation() -> None:
    """The check validation runs after each epoch's pass: within the share nothing happens;
    beyond it StoreError names the files (the first three and the count)."""
    cfg = load_config(overrides=["preset=tiny", "train.max_val_skipped=0.25"])
    rows = [skips.skip_row(f"v{i}", "validation", 3, "x.npy: unreadable .npy frame file (...); delete x.npy",
                           f"data/f/v{i}.npy") for i in range(5)]
    _check_val_skipped(2, 8, cfg, rows[:2], "epoch 3")  # 2 / 8 = 0.25: allowed
    with pytest.raises(StoreError, match=r"epoch 3: 5 of 8 validation videos are unreadable \(data/f/v0.npy, "
                                         r"data/f/v1.npy, data/f/v2.npy and 2 more; first: x.npy: unreadable"):
        _check_val_skipped(5, 8, cfg, rows, "epoch 3")


def test_a_repaired_training_video_discards_the_resume_point(tiny_workdir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that skipped a training video records it; once the file is restored the same
    run (here: `train_run` again, as a retrain does) trains from scratch, not from its last
    state, and ends with the video read and no record."""
    monkeypatch.chdir(_copy_tiny(tiny_workdir, tmp_path))
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", "train.batch_size=64"])
    victim = _victim(cfg, "train")
    bad, original = _truncate(victim)
    run_dir = tmp_path / "run"
    assert _train(cfg, run_dir)["history"][0]["skipped_videos"] == 1
    assert skips.read_record(run_dir)[["video", "where"]].values.tolist() == [[victim, "train"]]
    assert skips.stale_videos(run_dir) == []  # unchanged since the skip: resuming is fine
    bad.write_bytes(original)
    assert skips.stale_videos(run_dir) == [victim]
    history = _train(cfg, run_dir)["history"]
    assert len(history) == 1 and "skipped_videos" not in history[0]  # epoch 0 trained again, with the video
    assert not skips.record_path(run_dir).exists()


def _manifest(split: int, train: list[str], test: list[str]) -> None:
    path = paths.manifest(DATASET, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"video": v, "subset": "train"} for v in train] + [{"video": v, "subset": "test"} for v in test]
    pd.DataFrame(rows).to_csv(path, index=False)


def test_store_versions_bump_once_per_repair_and_only_for_manifests_training_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning's check: a recorded skip whose file is unchanged bumps nothing; a changed file
    bumps its video once (however often planning runs); the params digest changes for the
    splits that train the video and not for one that only tests it; after the retrain (record
    gone) the digest stays: the run is done."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides=["preset=tiny", "splits=[1, 2]"])
    _manifest(1, ["a", "b"], ["c"])
    _manifest(2, ["c", "b"], ["a"])
    store = paths.frames_dir(DATASET)
    store.mkdir(parents=True)
    (store / "a.npy").write_bytes(b"truncated")
    run = paths.run_dir(DATASET, 1, "single")
    rec = skips.SkipRecord.resume(run, 0)
    rec.add([skips.skip_row("a", "train", e, "unreadable", store / "a.npy") for e in range(2)])
    rec.write()
    before = {s: stages.store_version(cfg, DATASET, s) for s in (1, 2)}
    assert before == {1: "", 2: ""}
    assert stages.refresh_store_versions(cfg) == {} and not stages.STORE_VERSIONS.exists()
    (store / "a.npy").write_bytes(b"the original bytes, restored")
    for _ in range(2):  # idempotent: bumped once
        versions = stages.refresh_store_versions(cfg)
        assert versions[DATASET]["a"]["version"] == 1
    after = {s: stages.store_version(cfg, DATASET, s) for s in (1, 2)}
    assert after[1] != "" and after[2] == ""
    skips.record_path(run).unlink()  # the retrained run read the video: nothing recorded
    stages.refresh_store_versions(cfg)
    assert stages.store_version(cfg, DATASET, 1) == after[1]


def test_a_repaired_source_video_changes_the_pretraining_runs_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pretraining run trains on every source video: a repaired file it skipped changes
    the pretrain rule's `store` param once; the fine-tuning datasets' digests stay."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides=["preset=tiny"])
    source = cfg.pretrain.dataset.name
    store = paths.frames_dir(source)
    store.mkdir(parents=True)
    (store / "s.npy").write_bytes(b"truncated")
    rec = skips.SkipRecord.resume(paths.pretrain_dir(source), 0)
    rec.add([skips.skip_row("s", "train", 0, "unreadable", store / "s.npy")])
    rec.write()
    stages.refresh_store_versions(cfg)
    assert stages.pretrain_store_version(cfg) == ""
    (store / "s.npy").write_bytes(b"the original bytes, restored")
    stages.refresh_store_versions(cfg)
    bumped = stages.pretrain_store_version(cfg)
    assert bumped != "" and stages.refresh_store_versions(cfg)[source]["s"]["version"] == 1
    assert stages.pretrain_store_version(cfg) == bumped
    assert stages.pretrain_store_version(load_config(overrides=["preset=paper"])) == ""


@pytest.fixture(scope="module")
def trained_single(tiny_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir with the tiny preset's single-stream run of split 1 (1 epoch)."""
    work = _copy_tiny(tiny_workdir, tmp_path_factory.mktemp("eval_overrides"))
    cwd = os.getcwd()
    os.chdir(work)
    try:
        cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
        _train(cfg, paths.run_dir(DATASET, SPLIT, "single"))
    finally:
        os.chdir(cwd)
    return work


@pytest.mark.parametrize("override, key, trained", [("input.size=48", "input.size", "32"),
                                                     ("model.width=16", "model.width", "8"),
                                                     ("spa.test_steps=5", "spa.test_steps", "2")])
def test_evaluate_refuses_an_override_of_a_key_the_run_fixes(trained_single: Path, monkeypatch: pytest.MonkeyPatch,
                                                             override: str, key: str, trained: str) -> None:
    monkeypatch.chdir(trained_single)
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", override])
    with pytest.raises(ConfigError, match=rf"^{key}: the config gives \d+, but .*model.pt was trained with {trained}; "
                                          r".*retrain the run with it .* or drop the --set"):
        stages.evaluate(cfg, DATASET, SPLIT, "single", progress=False)
    assert not paths.eval_dir(DATASET, SPLIT, "single").exists()


def test_evaluate_keeps_evaluation_only_overrides_and_refuses_on_the_cli(trained_single: Path) -> None:
    """The test protocol, threads and decoding workers are the config's; the CLI refuses a
    run-fixed key with one line and exit 2."""
    base = [sys.executable, "-m", "asnet.cli", "evaluate", "--dataset", DATASET, "--split", str(SPLIT),
            "--variant", "single", "--no-progress", "--set", "preset=tiny", "--set", "train.epochs=1"]
    ok = subprocess.run(base + ["--set", "eval.max_clips=1", "--set", "train.threads=1", "--set", "train.workers=1"],
                        cwd=trained_single, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    preds = pd.read_csv(trained_single / paths.eval_dir(DATASET, SPLIT, "single") / "predictions.csv")
    assert (preds["clips"] == 1).all()  # eval.max_clips=1 applied
    bad = subprocess.run(base + ["--set", "input.size=48"], cwd=trained_single, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("asnet evaluate: error:")]
    assert len(errors) == 1 and "input.size: the config gives 48" in errors[0], bad.stderr


@pytest.mark.slow
def test_under_torchrun_validation_skips_are_all_reduced_and_recorded_by_rank_0(tiny_workdir: Path,
                                                                               tmp_path: Path) -> None:
    """2 processes: the truncated validation video is in rank 1's shard; the logged count
    covers both ranks and rank 0's record lists it."""
    work = _copy_tiny(tiny_workdir, tmp_path)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        cfg = load_config(overrides=["preset=tiny"])
        manifest = pd.read_csv(paths.manifest(DATASET, SPLIT))
        _, val_df = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True),
                                     cfg.train.val_fraction, cfg.seed)
        victim = str(val_df["video"].iloc[1])  # validation shards: rank r takes items r, r + 2, ...
        _truncate(victim)
    finally:
        os.chdir(cwd)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "asnet.cli",
           "train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", "single", "--no-progress",
           "--set", "preset=tiny", "--set", "train.epochs=1", "--set", "train.max_val_skipped=0.5"]
    proc = subprocess.run(cmd, cwd=work, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = work / paths.run_dir(DATASET, SPLIT, "single")
    assert checkpoint.load(run / "model.pt")["history"][0]["val_skipped_videos"] == 1
    assert skips.read_record(run)[["video", "where"]].values.tolist() == [[victim, "validation"]]
