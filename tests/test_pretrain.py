"""The Kinetics stand-in: a pretraining run on the synthetic source set that the target runs
fine-tune from (config `pretrain:`, asnet.stages.pretrain, the Snakemake rule `pretrain`)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from asnet import paths, stages
from asnet.config import load_config, run_shaping

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY_SOURCE = "synthetic_tiny_source"
FINE_TUNE = f"model.pretrained=results/pretrain/{TINY_SOURCE}/model.pt"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_preset_fine_tunes_every_base_run_from_the_pretraining_run() -> None:
    cfg = load_config()
    model = paths.pretrain_model(cfg.pretrain.dataset.name)
    for variant in ("single", "siamese_center", "asnet", "probe_oracle", "asnet_fusion_sum"):
        assert stages.pretrained_inputs(cfg, variant) == [str(model)], variant
        assert "pretrain" in run_shaping(stages.run_config(cfg, variant).to_dict())
    # Table 2's other backbones cannot load ResNet-10 weights: each fine-tunes its own backbone's
    # pretraining run (tests/test_pretrain_backbones.py), which the same `pretrain:` shapes.
    for variant, key in (("resnet18_single", "resnet18"), ("densenet121_asnet", "densenet121")):
        rc = stages.run_config(cfg, variant)
        own = str(paths.pretrain_backbone_model(cfg.pretrain.dataset.name, key))
        assert stages.pretrained_inputs(cfg, variant) == [own] and rc.model.pretrained == own
        assert "pretrain" in run_shaping(rc.to_dict())
    # The source set: its own seed, actor-centred, the target's classes and more.
    source, target = cfg.pretrain.dataset.synthetic, cfg.datasets[0].synthetic
    assert source["seed"] != target["seed"] and source["off_centre"] == 0.0
    assert source["n_classes"] > target["n_classes"]


def test_signatures_follow_what_the_pretraining_trains() -> None:
    """Editing the pretraining retrains it and every run that starts from it, and nothing else;
    editing SPA (unused by a single stream) does not retrain it."""
    base = load_config()
    more = load_config(overrides=["pretrain.epochs=13"])
    assert stages.pretrain_signature(more) != stages.pretrain_signature(base)
    for variant in ("single", "asnet"):
        assert stages.train_signature(more, "synthetic", variant) != stages.train_signature(base, "synthetic", variant)
    # A backbone outside report.table2_backbones has no pretraining run: from scratch, untouched.
    assert stages.train_signature(more, "synthetic", "resnext101_64f_single") == stages.train_signature(
        base, "synthetic", "resnext101_64f_single")
    gamma = load_config(overrides=["spa.gamma=0.5"])
    assert stages.pretrain_signature(gamma) == stages.pretrain_signature(base)
    assert stages.train_signature(gamma, "synthetic", "asnet") != stages.train_signature(base, "synthetic", "asnet")
    assert stages.pretrain_signature(load_config(overrides=["train.threads=2"])) == stages.pretrain_signature(base)
    # A preset that does not fine-tune from it keeps the digests it had before it existed.
    tiny = load_config(overrides=["preset=tiny"])
    assert stages.train_signature(tiny, "synthetic_tiny", "asnet") == stages.train_signature(
        load_config(overrides=["preset=tiny", "pretrain=null"]), "synthetic_tiny", "asnet")


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding the tiny preset's source set, prepared and extracted."""
    work = tmp_path_factory.mktemp("tiny_source")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        cfg = load_config(overrides=["preset=tiny"])
        stages.prepare(cfg, TINY_SOURCE, progress=False)
        stages.extract(cfg, TINY_SOURCE, progress=False)
    return work


def test_source_manifest_trains_on_every_video(tiny_source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tiny_source)
    cfg = load_config(overrides=["preset=tiny"])
    df = pd.read_csv(paths.pretrain_manifest(TINY_SOURCE))
    spec = cfg.pretrain.dataset.synthetic
    assert len(df) == spec["n_classes"] * spec["groups"] * spec["clips_per_group"]
    assert set(df["subset"]) == {"train"} and df["label"].nunique() == spec["n_classes"]
    assert stages.manifests(cfg, TINY_SOURCE) == [paths.pretrain_manifest(TINY_SOURCE)]
    with pytest.raises(ValueError, match="pretraining source set"):
        stages.train(cfg, TINY_SOURCE, 1, "single")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_pretraining_is_deterministic_and_resumes(tiny_source: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded: two pretraining runs give identical tensors; a run stopped after epoch 1 and
    resumed with more epochs, and one killed after epoch 1 and rerun, end where an
    uninterrupted run does."""
    data = tiny_source / "data"
    models = []
    for name, epochs in (("a", [2]), ("b", [2]), ("resumed", [1, 2])):
        work = tmp_path / name
        work.mkdir()
        (work / "data").symlink_to(data)
        monkeypatch.chdir(work)
        for e in epochs:
            model = stages.pretrain(load_config(overrides=["preset=tiny", f"pretrain.epochs={e}"]), progress=False)
        models.append(work / model)
    # kill -9 right after epoch 1's state is saved (asnet.faults), then the same command again
    work = tmp_path / "killed"
    work.mkdir()
    (work / "data").symlink_to(data)
    cmd = [sys.executable, "-m", "asnet.cli", "pretrain", "--no-progress", "--set", "preset=tiny",
           "--set", "pretrain.epochs=2"]
    killed = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ASNET_FAULT": "train.state_saved@1:kill"})
    run = work / paths.pretrain_dir(TINY_SOURCE)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (run / "state" / "last.pt").exists() and not (run / "model.pt").exists()
    rerun = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming {paths.pretrain_dir(TINY_SOURCE)} from epoch 1" in rerun.stderr  # not retrained from scratch
    models.append(run / "model.pt")
    a, b, resumed, after_kill = (_tensors(m) for m in models)
    assert a.keys() == b.keys() == resumed.keys() == after_kill.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) and torch.equal(a[k], resumed[k]) and torch.equal(a[k], after_kill[k]), k
    ck = torch.load(models[0], weights_only=True)
    assert ck["num_classes"] == 12 and ck["variant"] == "single" and ck["pretrained"] is None
    assert [d["name"] for d in ck["config"]["datasets"]] == [TINY_SOURCE] and len(ck["history"]) == 2


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _jobs(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln.strip().removeprefix("local").removeprefix("rule ").rstrip(":")
            for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip().startswith(("rule ", "localrule "))]


@pytest.mark.slow
def test_snakemake_pretrains_once_and_fine_tunes_from_it(tmp_path: Path) -> None:
    """Two fine-tuned runs (tiny preset) build the pretraining first, once; each model.pt records
    the pretraining file's sha256; a second call does nothing, and a pretraining edit reruns
    the pretraining and the runs that start from it."""
    conf = tmp_path / "fine_tune.yaml"
    conf.write_text(f"preset: tiny\nmodel: {{pretrained: results/pretrain/{TINY_SOURCE}/model.pt}}\n")
    runs = [f"results/checkpoints/synthetic_tiny/split1/{v}/model.pt" for v in ("single", "asnet")]
    proc = _snakemake(tmp_path, *runs, "--configfile", str(conf))
    jobs = _jobs(proc)
    assert jobs.count("pretrain") == 1 and jobs.count("train") == 2, jobs
    assert jobs.index("pretrain") < jobs.index("train")
    pre = tmp_path / paths.pretrain_model(TINY_SOURCE)
    for run in runs:
        record = torch.load(tmp_path / run, weights_only=True)["pretrained"]
        assert record["sha256"] == _sha256(pre) and record["release"] == "asnet" and record["tensors_loaded"] > 0
    assert (tmp_path / paths.pretrain_dir(TINY_SOURCE) / "state" / "last.pt").exists()
    again = _snakemake(tmp_path, *runs, "--configfile", str(conf))
    assert _jobs(again) == [] and "Nothing to be done" in again.stdout + again.stderr
    edit = tmp_path / "edit.yaml"
    edit.write_text(conf.read_text() + "pretrain: {lr: 0.02}\n")
    dry = _snakemake(tmp_path, *runs, "--configfile", str(edit), "-n")
    jobs = dry.stdout[dry.stdout.index("Job stats:"):]
    assert "pretrain" in jobs and "train" in jobs and "Params have changed" in dry.stdout, dry.stdout
