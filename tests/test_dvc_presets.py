"""dvc.yaml follows the preset (asnet/dvc_yaml.py): the committed file is the generated one for
the default preset, every preset's stages have disjoint outputs of its own datasets, `dvc repro`
plans the paper preset (no pretraining source) and runs a tiny preset without one; a stage's
deps are the modules it imports, so `dvc status` names only the stages an edit concerns."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asnet import dvc_yaml
from asnet.config import PRESETS_DIR

REPO = Path(__file__).resolve().parents[1]
TREE = ("Snakefile", "workflow", "config", "asnet", ".dvcignore")


def test_committed_dvc_yaml_is_the_generated_one() -> None:
    cfg = dvc_yaml.preset_config("default")
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml.render(cfg), "run `asnet dvc-yaml` and commit dvc.yaml"
    assert (REPO / "params.yaml").read_text() == dvc_yaml.render_params(cfg)


@pytest.mark.parametrize("preset", sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
def test_every_preset_has_stages_of_its_own_datasets(preset: str) -> None:
    cfg = dvc_yaml.preset_config(preset)
    stages = dvc_yaml.stages(cfg)
    params = yaml.safe_load(dvc_yaml.render_params(cfg))

    def named(path: str) -> str:
        return path.replace("${dataset}", params.get("dataset", "")).replace("${source}", params.get("source", ""))

    outs = [named(o) for s in stages.values() for o in s["outs"]]
    assert len(outs) == len(set(outs))
    assert {f"data/{d.name}" for d in cfg.datasets} <= set(outs)
    source = cfg.pretrain.dataset.name if cfg.pretrain else None
    assert ("pretrain" in stages) == bool(source)
    assert (f"data/{source}" in outs) == bool(source)
    if not source:
        assert not any("synthetic_source" in o or "results/pretrain" in o for o in outs)
    for stage in stages.values():
        code = [d for d in stage["deps"] if d.startswith("asnet/")]
        assert code and "asnet" not in stage["deps"] and all((REPO / d).is_file() for d in code)
    assert "asnet/train/loop.py" in stages["train"]["deps"]
    assert "asnet/report/tables.py" not in stages["train"]["deps"]


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "DVC_NO_ANALYTICS": "1"}


def _run(cmd: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=900, check=False)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _dvc(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd, ok)


def _repo(root: Path, preset: str, preset_text: str | None = None) -> Path:
    """A copy of the tree as a DVC project (no git), with dvc.yaml and params.yaml for `preset`."""
    root.mkdir()
    for rel in TREE:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / rel)
    if preset_text:
        (root / "config/presets" / f"{preset}.yaml").write_text(preset_text)
    _dvc("init", "-q", "--no-scm", cwd=root)
    # The copy's own asnet writes them (its presets, its module files).
    _run([sys.executable, "-m", "asnet.cli", "dvc-yaml", "--preset", preset], root)
    return root


@pytest.mark.slow
def test_dvc_repro_plans_the_paper_preset(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "paper")
    cfg = dvc_yaml.preset_config("paper")
    for d in cfg.datasets:  # the raw data a user has (deps must exist)
        (repo / d.root).mkdir(parents=True)
        (repo / d.splits_dir).mkdir(parents=True)
    (repo / cfg.model.pretrained_dir).mkdir(parents=True)
    # The whole graph is valid; a dry run of a fresh project stops at the first stage whose
    # deps are not made yet (DVC), so the first stage is planned, and its check passes.
    assert "train" in _dvc("dag", cwd=repo).stdout
    dry = _dvc("repro", "--dry", "frames", cwd=repo)
    assert "snakemake frames --cores all --config preset=paper" in dry.stdout, dry.stdout
    _run([sys.executable, "-m", "asnet.cli", "dvc-yaml", "--check", "--preset", "paper"], repo)
    outs = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["frames"]["outs"]
    assert outs == ["data/ucf101", "data/hmdb51"]


@pytest.mark.slow
def test_dvc_repro_without_a_pretraining_source_then_status_follows_code(tmp_path: Path) -> None:
    # The copy's tiny preset without its pretraining source, one variant.
    tiny = yaml.safe_load((PRESETS_DIR / "tiny.yaml").read_text())
    tiny.update(pretrain=None, variants=["single"])
    repo = _repo(tmp_path / "repo", "tiny", yaml.safe_dump(tiny))
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert set(stages) == {"frames", "train", "table6"}
    _dvc("repro", cwd=repo)
    assert (repo / "results/table6.tex").exists() and not (repo / "data/synthetic_tiny_source").exists()
    assert "up to date" in _dvc("status", cwd=repo).stdout.lower()
    shown = _dvc("metrics", "show", cwd=repo).stdout
    assert "results/eval/synthetic_tiny/split1/single/metrics.json" in shown, shown
    # An edit of a module only Table 6 imports: only the table6 stage is stale.
    with (repo / "asnet/report/tables.py").open("a") as f:
        f.write("\n# edited\n")
    status = _dvc("status", cwd=repo).stdout
    assert "table6:" in status and "train:" not in status and "frames:" not in status, status
    with (repo / "asnet/train/loop.py").open("a") as f:
        f.write("\n# edited\n")
    status = _dvc("status", cwd=repo).stdout  # evaluation imports the training loop's input code too
    assert "train:" in status and "asnet/train/loop.py" in status and "frames:" not in status, status
    # params.yaml naming another preset than dvc.yaml was written for: one line, before any work.
    (repo / "params.yaml").write_text("preset: default\ndataset: synthetic\n")
    failed = _dvc("repro", "frames", cwd=repo, ok=False)
    assert failed.returncode != 0
    assert "run `asnet dvc-yaml --preset default`" in failed.stdout + failed.stderr, failed.stderr[-2000:]
