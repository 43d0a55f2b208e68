"""Table 2's other backbones fine-tune pretraining runs of their own on the source set
(asnet.stages.pretrained_backbones, the Snakemake rule `pretrain_backbone`, the DVC stage
`pretrain_backbones`), while the preset's backbone keeps its pretraining run and path."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asnet import dvc_yaml, hara, paths, stages
from asnet.config import ConfigError, load_config, run_shaping
from asnet.variants import TABLE2_BACKBONES

REPO = Path(__file__).resolve().parents[1]
TINY_SOURCE = "synthetic_tiny_source"
FINE_TUNE = f"model.pretrained=results/pretrain/{TINY_SOURCE}/model.pt"


def test_default_preset_pretrains_each_other_table2_backbone() -> None:
    cfg = load_config()
    source = cfg.pretrain.dataset.name
    assert stages.pretrained_backbones(cfg) == cfg.report.table2_backbones
    # The preset's own run: the same recipe, path and digest as before backbones had their own.
    assert stages.pretrain_run_dir(cfg) == paths.pretrain_dir(source)
    preset = stages.pretrain_config(cfg)
    assert (preset.model.arch, preset.model.depth, preset.input.clip_len) == ("resnet", 10, cfg.input.clip_len)
    for key in cfg.report.table2_backbones:
        pcfg = stages.pretrain_config(cfg, key)
        overrides = TABLE2_BACKBONES[key][2]
        assert (pcfg.model.arch, pcfg.model.depth) == (overrides["model.arch"], overrides["model.depth"])
        assert pcfg.model.width == cfg.model.width and pcfg.model.pretrained is None
        assert pcfg.input.clip_len == overrides.get("input.clip_len", cfg.input.clip_len)  # DenseNet: 16
        assert (pcfg.train.epochs, pcfg.train.lr) == (cfg.pretrain.epochs, cfg.pretrain.lr)
        assert pcfg.datasets == (cfg.pretrain.dataset,) and pcfg.train.batch_size == cfg.train.batch_size
        own = paths.pretrain_backbone_model(source, key)
        assert not own.is_relative_to(paths.pretrain_dir(source))  # DVC outs must not nest
        for base in ("single", "siamese_center", "asnet"):
            rc = stages.run_config(cfg, f"{key}_{base}")
            assert stages.pretrained_inputs(cfg, f"{key}_{base}") == [str(own)]
            assert rc.train.lr == cfg.train.lr and "pretrain" in run_shaping(rc.to_dict())
            assert stages.fine_tuned_backbone(cfg, f"{key}_{base}") == key
    assert stages.pretrain_config(cfg, "densenet121").input.clip_len == 16
    # Each backbone's run has its own digest; a `pretrain:` edit retrains each and its runs.
    sigs = {stages.pretrain_signature(cfg, k) for k in (None, *cfg.report.table2_backbones)}
    assert len(sigs) == 1 + len(cfg.report.table2_backbones)
    more = load_config(overrides=["pretrain.epochs=13"])
    assert stages.pretrain_signature(more, "resnet18") != stages.pretrain_signature(cfg, "resnet18")
    assert stages.train_signature(more, "synthetic", "resnet18_single") != stages.train_signature(
        cfg, "synthetic", "resnet18_single")
    # A backbone the report does not tabulate has none and trains from scratch.
    fewer = load_config(overrides=["report.table2_backbones=[resnet18]"])
    assert stages.pretrained_backbones(fewer) == ("resnet18",)
    assert stages.pretrained_inputs(fewer, "resnet50_single") == []


def test_presets_without_the_stand_in_pretrain_no_backbone() -> None:
    """The paper preset (Hara's Kinetics files) and the tiny preset (from scratch) build none,
    and their Table 2 rows start from what they did before."""
    paper = load_config(overrides=["preset=paper"])
    assert stages.pretrained_backbones(paper) == ()
    for key in paper.report.table2_backbones:
        rc = stages.run_config(paper, f"{key}_single")
        want = hara.pretrained_file(rc.to_dict()["model"], rc.input.clip_len)
        assert rc.model.pretrained is None and [str(want)] == stages.pretrained_inputs(paper, f"{key}_single")
    assert "pretrain_backbones" not in dvc_yaml.stages(paper)
    tiny = load_config(overrides=["preset=tiny"])
    assert stages.pretrained_backbones(tiny) == ()
    assert stages.pretrained_inputs(tiny, "resnet18_single") == []
    fine = load_config(overrides=["preset=tiny", FINE_TUNE])
    assert stages.pretrained_backbones(fine) == ("resnet18", "densenet121")


def test_backbone_outside_the_pretrained_ones_is_one_line(tmp_path: Path) -> None:
    cfg = load_config()
    with pytest.raises(ConfigError, match="--backbone resnext101_64f: not a backbone pretrained"):
        stages.pretrain_config(cfg, "resnext101_64f")
    proc = subprocess.run([sys.executable, "-m", "asnet.cli", "pretrain", "--backbone", "nope"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "choose one of resnet18, resnet50" in proc.stderr
    with pytest.raises(ConfigError, match="pretrain.dataset.name: 'backbones' is the folder"):
        load_config(overrides=["pretrain.dataset.name=backbones"])


def test_dvc_stage_of_the_backbone_pretrainings() -> None:
    st = dvc_yaml.stages(load_config())
    outs = st["pretrain_backbones"]["outs"]
    assert outs == ["results/pretrain/backbones/${source}"]
    assert not any(o.startswith(p + "/") or p.startswith(o + "/") for o in outs for p in st["pretrain"]["outs"])
    assert outs[0] in st["train"]["deps"] and "snakemake pretrain_backbones " in st["pretrain_backbones"]["cmd"]
    assert "asnet/train/loop.py" in st["pretrain_backbones"]["deps"]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_snakemake_pretrains_a_table2_backbone_and_its_run_fine_tunes_it(tmp_path: Path) -> None:
    """Tiny preset fine-tuning the stand-in: a Table 2 run of ResNet-18 builds ResNet-18's own
    pretraining (not the preset's), and its model.pt and metrics.json record that file's sha256."""
    conf = tmp_path / "fine_tune.yaml"
    conf.write_text(f"preset: tiny\nmodel: {{pretrained: results/pretrain/{TINY_SOURCE}/model.pt}}\n")
    metrics = tmp_path / "results/eval/synthetic_tiny/split1/resnet18_single/metrics.json"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--cores", "2", str(metrics.relative_to(tmp_path)), "--configfile", str(conf)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    jobs = [ln.strip().removeprefix("local").removeprefix("rule ").rstrip(":")
            for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip().startswith(("rule ", "localrule "))]
    assert jobs.count("pretrain_backbone") == 1 and "pretrain" not in jobs, jobs
    pre = tmp_path / paths.pretrain_backbone_model(TINY_SOURCE, "resnet18")
    assert not (tmp_path / paths.pretrain_model(TINY_SOURCE)).exists()
    ck = torch.load(pre, weights_only=True)
    assert (ck["config"]["model"]["arch"], ck["config"]["model"]["depth"]) == ("resnet", 18)
    assert [d["name"] for d in ck["config"]["datasets"]] == [TINY_SOURCE] and ck["pretrained"] is None
    run = torch.load(tmp_path / "results/checkpoints/synthetic_tiny/split1/resnet18_single/model.pt",
                     weights_only=True)["pretrained"]
    assert run["sha256"] == _sha256(pre) and run["release"] == "asnet" and run["tensors_loaded"] > 0
    assert json.loads(metrics.read_text())["pretrained"]["sha256"] == _sha256(pre)


def test_gpu_plan_counts_each_backbone_pretraining_once() -> None:
    from asnet.plan.table import plan

    df = plan(load_config(overrides=["preset=tiny", FINE_TUNE, "report.table2_backbones=[resnet18]"]), "table2")
    pre = df[df["job"] == "pretrain"]
    assert list(pre["variant"]) == ["resnet18_single"] and list(pre["jobs"]) == [1]
    assert list(pre["dataset"]) == [TINY_SOURCE] and list(pre["epochs"]) == [1]  # tiny's pretrain.epochs


def test_backbone_pretrainings_zero_init_their_bottlenecks_only() -> None:
    """Table 2's backbone pretrainings start each bottleneck's last BN at 0 (Hara's weight 1 leaves
    ResNet-50/101 and ResNeXt-101 at chance on the stand-in); the preset's ResNet-10 run, whose
    basic blocks it would not touch anyway, keeps its recipe and digest."""
    from asnet.models import build_model
    from asnet.models.resnet3d import Bottleneck

    cfg = load_config()
    assert not stages.pretrain_config(cfg).model.zero_init_residual
    assert "zero_init_residual" not in run_shaping(stages.pretrain_config(cfg).to_dict())["model"]
    for key in cfg.report.table2_backbones:
        assert stages.pretrain_config(cfg, key).model.zero_init_residual
    deep = stages.pretrain_config(cfg, "resnet50").model
    zeroed = [m.bn3.weight for m in build_model(deep, 12, 1).modules() if isinstance(m, Bottleneck)]
    assert zeroed and all((w == 0).all() for w in zeroed)
    plain = build_model(dataclasses.replace(deep, zero_init_residual=False), 12, 1)
    assert all((m.bn3.weight == 1).all() for m in plain.modules() if isinstance(m, Bottleneck))
    torch.manual_seed(0)
    a = build_model(dataclasses.replace(cfg.model, zero_init_residual=True), 8, 1).state_dict()
    torch.manual_seed(0)
    b = build_model(cfg.model, 8, 1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # ResNet-10: basic blocks, nothing to zero
