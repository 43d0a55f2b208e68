"""The anchor check: a published fine-tuned file (a fake one built the way Hara's 2018 code saves
it) is evaluated with its own classifier through the Snakemake target; missing files give
"not run" rows; a number far from the reported one is flagged in the table and the audit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from asnet.config import load_config
from asnet.models.resnet3d import BackboneSpec, build_backbone
from asnet.report.anchor import FLAG, anchor_runs, audit_lines, reported

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def test_reported_numbers_carry_provenance_and_match_the_published_files() -> None:
    df = reported()
    assert set(df["file"]) == {"resnext-101-kinetics-ucf101_split1.pth", "resnext-101-64f-kinetics-ucf101_split1.pth",
                               "resnext-101-kinetics-hmdb51_split1.pth", "resnext-101-64f-kinetics-hmdb51_split1.pth"}
    assert df["provenance"].str.contains("1711.09577").all() and df["measure"].str.contains("3 splits").all()
    assert dict(zip(df["file"], df["top1"], strict=True))["resnext-101-64f-kinetics-ucf101_split1.pth"] == 94.5


def test_default_preset_reports_every_file_as_not_run(tmp_path: Path) -> None:
    cfg = load_config(overrides=[f"report.anchor_dir={tmp_path}"])
    runs = anchor_runs(cfg)
    assert len(runs) == 4 and all(r["status"].startswith("not run: no ") for r in runs)
    ucf = load_config(overrides=[f"report.anchor_dir={tmp_path}", "report.anchor_datasets={ucf101: synthetic}"])
    assert {r["status"] for r in anchor_runs(ucf) if r["published_dataset"] == "ucf101"} == {"not run: file missing"}


@pytest.mark.slow
def test_anchor_check_target_evaluates_a_published_file_and_flags_it(tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    net = build_backbone(BackboneSpec(arch="resnext", depth=101, width=64, cardinality=32, shortcut="B"), 101)
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"epoch": 100, "arch": "resnext-101", "state_dict": state, "optimizer": {}},
               weights / "resnext-101-kinetics-ucf101_split1.pth", _use_new_zipfile_serialization=False)
    cfg = tmp_path / "anchor.yaml"
    cfg.write_text(f"preset: tiny\nreport: {{anchor_dir: {weights}, anchor_datasets: {{ucf101: synthetic_tiny}}}}\n")
    proc = subprocess.run(SNAKEMAKE + ["--cores", "2", "--directory", str(tmp_path), "results/anchor_check.tex",
                                       "--configfile", str(cfg)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    df = pd.read_csv(tmp_path / "results" / "anchor_check.csv").set_index("file")
    done = df.loc["resnext-101-kinetics-ucf101_split1.pth"]
    assert done["status"] == "evaluated" and done["videos_evaluated"] > 0
    assert done["videos_evaluated"] + done["videos_excluded"] == done["videos_listed"]
    # A random 101-way model on 3 classes is far from Hara's 90.7: the data path is flagged.
    assert bool(done["flag"]) and abs(done["diff"]) > 3
    assert (tmp_path / "results" / "anchor" / "synthetic_tiny" / "resnext-101-kinetics-ucf101_split1" / "scores.npz").exists()
    assert df.loc["resnext-101-64f-kinetics-ucf101_split1.pth", "status"] == "not run: file missing"
    assert "FLAG" in (tmp_path / "results" / "anchor_check.tex").read_text()
    lines = "\n".join(audit_lines(tmp_path / "results" / "anchor_check.csv"))
    assert FLAG in lines and "resnext-101-kinetics-ucf101_split1.pth on synthetic_tiny" in lines
    # The Snakemake console follows the check: which file it evaluates, then its videos.
    console = [line.removeprefix("[anchor_check] ") for line in proc.stderr.splitlines()
               if line.startswith("[anchor_check] ")]
    assert any(line.startswith("anchor check ") and ": resnext-101-kinetics-ucf101_split1.pth on synthetic_tiny"
               in line for line in console), proc.stderr[-3000:]
    n = int(done["videos_evaluated"])
    assert f"evaluate resnext-101-kinetics-ucf101_split1: {n} of {n} videos" in console
