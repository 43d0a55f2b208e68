"""Pretrained weights: Hara et al.'s two releases load into the matching backbone exactly as each
release saves its files; every file that does not fit fails loudly, naming the keys; the input
normalisation follows the release; the load is recorded in model.pt."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import torch

from asnet import hara, paths
from asnet.config import ConfigError, load_config, with_overrides
from asnet.data.crops import crop_resize
from asnet.models import build_model
from asnet.models.pretrained import PretrainedMismatch, load_pretrained, load_published_classifier
from asnet.models.resnet3d import BackboneSpec, build_backbone

TINY = load_config(overrides=["preset=tiny"])


def _cfg(**model):
    """The tiny preset with model keys replaced (input.clip_len from `clip_len`)."""
    clip = model.pop("clip_len", 4)
    items = {f"model.{k}": v for k, v in model.items()}
    return with_overrides(TINY, {**items, "input.clip_len": clip})


def _save_like(release: str, net: torch.nn.Module, path: Path, legacy: bool = False, dotted: bool = False,
               prefix: str | None = None) -> None:
    """`net`'s weights saved the way `release`'s training code saves a checkpoint.

    2018 (CVPR2018 branch, PyTorch 0.3): nn.DataParallel ("module." keys), no BatchNorm
    num_batches_tracked, DenseNet layers "norm.1"/"conv.1", {epoch, arch, state_dict, optimizer}.
    2020: the unwrapped module's state_dict, {epoch, arch, state_dict, optimizer, scheduler}.
    """
    state = net.state_dict()
    if release == "hara2018":
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        if dotted:
            state = {k.replace(".norm1.", ".norm.1.").replace(".conv1.", ".conv.1.")
                     .replace(".norm2.", ".norm.2.").replace(".conv2.", ".conv.2.")
                     if "denselayer" in k else k: v for k, v in state.items()}
        state = {f"{'module.' if prefix is None else prefix}{k}": v for k, v in state.items()}
        obj = {"epoch": 200, "arch": "x", "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    else:
        obj = {"epoch": 200, "arch": "x", "state_dict": state, "optimizer": {"state": {}, "param_groups": []},
               "scheduler": {"milestones": [50, 100, 150]}}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def _source(arch: str, depth: int, shortcut: str | None, classes: int, width: int = 64, seed: int = 3):
    torch.manual_seed(seed)
    net = build_backbone(BackboneSpec(arch=arch, depth=depth, width=width, shortcut=shortcut), classes).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a wrong mapping shows in the outputs
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


# name, release, arch, depth, shortcut, classes, clip_len, legacy serialisation, dotted DenseNet keys
PUBLISHED = [
    ("resnet-18-kinetics.pth", "hara2018", "resnet", 18, "A", 400, 16, True, False),
    ("r3d18_K_200ep.pth", "hara2020", "resnet", 18, "B", 700, 16, False, False),
    ("resnet-50-kinetics.pth", "hara2018", "resnet", 50, "B", 400, 16, False, False),
    ("r3d50_KM_200ep.pth", "hara2020", "resnet", 50, "B", 1039, 16, False, False),
    ("resnext-101-kinetics.pth", "hara2018", "resnext", 101, "B", 400, 16, True, False),
    ("resnext-101-64f-kinetics.pth", "hara2018", "resnext", 101, "B", 400, 64, False, False),
    ("densenet-121-kinetics.pth", "hara2018", "densenet", 121, None, 400, 16, True, True),
]


@pytest.mark.parametrize("case", PUBLISHED, ids=[c[0] for c in PUBLISHED])
def test_published_files_load_into_the_matching_backbone(tmp_path: Path, case) -> None:
    name, release, arch, depth, shortcut, classes, clip_len, legacy, dotted = case
    src = _source(arch, depth, shortcut, classes)
    path = tmp_path / name
    _save_like(release, src, path, legacy=legacy, dotted=dotted)
    cfg = _cfg(arch=arch, depth=depth, width=64, pretrained=str(path), clip_len=clip_len)
    model = build_model(cfg.model, num_classes=5, streams=2).eval()
    report = load_pretrained(model, path, cfg)
    n_backbone = sum(1 for k in src.state_dict() if not k.startswith(f"{src.head_name}.")
                     and not (release == "hara2018" and k.endswith("num_batches_tracked")))
    assert report.release == release and report.tensors_loaded == n_backbone
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert report.missing == [] and report.unexpected == []
    assert report.normalisation == hara.RELEASE_NORMALISATION[release].to_dict()
    assert not any(k.startswith(f"backbone.{src.head_name}.") for k in model.state_dict())  # no unused head
    x = torch.randn(1, 3, 16, 32, 32)  # DenseNet's four temporal poolings need 16 frames
    with torch.no_grad():
        assert torch.allclose(model.features(x), src.features(x), atol=1e-5)
        assert model(x, x).shape == (1, 5)  # the target's classifier, not the file's


def test_published_classifier_keeps_its_own_head(tmp_path: Path) -> None:
    src = _source("resnet", 18, "A", 101)  # a UCF-101-sized head, as the fine-tuned files have
    path = tmp_path / "resnext-101-kinetics-ucf101_split1.pth"
    _save_like("hara2018", src, path)
    with pytest.raises(PretrainedMismatch, match="resnext-101 with 101 classes"):
        load_published_classifier(path)  # a ResNet-18 under a ResNeXt-101 name
    path2 = tmp_path / "resnet-18-kinetics.pth"
    _save_like("hara2018", src, path2)
    with pytest.raises(PretrainedMismatch, match="400"):  # the file's 101-way head is not Kinetics' 400
        load_published_classifier(path2)


def _small(tmp_path: Path, name: str, depth: int = 18, shortcut: str | None = "A", prefix: str | None = None,
           release: str = "hara2018", classes: int = 400) -> Path:
    path = tmp_path / name
    _save_like(release, _source("resnet", depth, shortcut, classes, width=8), path, prefix=prefix)
    return path


def _load_small(path: Path, depth: int = 18, release: str = "hara2018", **extra):
    cfg = _cfg(arch="resnet", depth=depth, width=8, pretrained=str(path), pretrained_release=release, **extra)
    model = build_model(cfg.model, num_classes=3, streams=1)
    return load_pretrained(model, path, cfg), model


def test_shortcut_b_resnet18_into_shortcut_a_model_is_an_error(tmp_path: Path) -> None:
    path = _small(tmp_path, "my-r18.pth", shortcut="B")
    with pytest.raises(PretrainedMismatch, match=r"unexpected \[layer2.0.downsample.0.weight") as err:
        _load_small(path)
    assert "model.shortcut" in str(err.value) and "pretrained_strict" in str(err.value)
    report, _ = _load_small(path, shortcut="B")  # the right shortcut loads it
    assert report.unexpected == [] and report.missing == []


def test_depth_mismatch_and_empty_state_are_errors_unless_not_strict(tmp_path: Path, caplog) -> None:
    path = _small(tmp_path, "my-r18.pth", depth=18)
    with pytest.raises(PretrainedMismatch, match=r"missing from the file \[layer1.2.conv1.weight"):
        _load_small(path, depth=34)
    with caplog.at_level(logging.WARNING):
        report, _ = _load_small(path, depth=34, pretrained_strict=False)
    assert report.missing and "loading anyway" in caplog.text
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 1, "arch": "resnet-18", "state_dict": {}}, empty)
    with pytest.raises(PretrainedMismatch, match="holds no backbone tensor"):
        _load_small(empty)


def test_release_is_known_from_the_name_or_the_key(tmp_path: Path) -> None:
    path = _small(tmp_path, "renamed.pth", shortcut="B", prefix="", release="hara2020", classes=700)
    cfg = _cfg(arch="resnet", depth=18, width=8, pretrained=str(path))
    with pytest.raises(PretrainedMismatch, match="pretrained_release: hara2018 | hara2020"):
        load_pretrained(build_model(cfg.model, 3, 1), path, cfg)
    report, model = _load_small(path, release="hara2020")  # the key says it: shortcut B, 2020 normalisation
    assert model.backbone.spec.shortcut == "B" and report.normalisation["name"] == "hara2020_kinetics"


def test_file_that_is_not_what_its_name_says(tmp_path: Path) -> None:
    # A 400-class file under the 2020 name whose published file has 700 classes.
    src = _source("resnet", 18, "B", 400)
    path = tmp_path / "r3d18_K_200ep.pth"
    _save_like("hara2020", src, path)
    cfg = _cfg(arch="resnet", depth=18, width=64, pretrained=str(path))
    with pytest.raises(PretrainedMismatch, match="400 classes, but the published r3d18_K_200ep.pth has 700"):
        load_pretrained(build_model(cfg.model, 3, 1), path, cfg)


def test_not_a_checkpoint_is_a_named_error_that_never_suggests_unsafe_loading(tmp_path: Path) -> None:
    junk = tmp_path / "resnet-18-kinetics.pth"
    junk.write_bytes(b"<html>quota exceeded</html>")
    cfg = _cfg(arch="resnet", depth=18, width=64, pretrained=str(junk))
    with pytest.raises(PretrainedMismatch, match="not a PyTorch checkpoint") as err:
        load_pretrained(build_model(cfg.model, 3, 1), junk, cfg)
    assert "weights_only" not in str(err.value)
    text = tmp_path / "resnet-18-kinetics.txt.pth"
    text.write_text("not a checkpoint\n" * 100)  # torch.load raises KeyError on plain text
    with pytest.raises(PretrainedMismatch, match="not a PyTorch checkpoint"):
        load_pretrained(build_model(cfg.model, 3, 1), text, cfg)
    with pytest.raises(FileNotFoundError, match="model.pretrained"):
        load_pretrained(build_model(cfg.model, 3, 1), tmp_path / "nope.pth", cfg)


@pytest.mark.parametrize("overrides, message", [
    ({"pretrained": "w/r3d18_K_200ep.pth", "depth": 34}, "holds a resnet-18 but the model is resnet-34"),
    ({"pretrained": "w/r3d18_K_200ep.pth", "pretrained_release": "hara2018"}, "is a hara2020 file"),
    ({"pretrained": "w/r3d18_K_200ep.pth", "shortcut": "A"}, "uses shortcut B but model.shortcut is A"),
    ({"pretrained": "w/resnet-18-kinetics.pth", "width": 32}, "model.width is 32"),
    ({"pretrained": "w/r2p1d18_K_200ep.pth"}, "R\\(2\\+1\\)D"),
    ({"pretrained_dir": "w", "pretrained_release": "hara2020", "arch": "resnext", "depth": 101},
     "2020 release has no resnext-101"),
])
def test_config_contradicting_the_published_file_is_refused_before_any_job(overrides, message) -> None:
    base = {"arch": "resnet", "depth": 18, "width": 64}
    with pytest.raises(ConfigError, match=message):
        _cfg(**{**base, **overrides})


def test_normalisation_follows_the_release_and_pins_the_input_tensor() -> None:
    paper = load_config(overrides=["preset=paper"])
    assert paper.normalisation() == hara.ACTIVITYNET_2018  # paper preset loads the 2018 files
    r2020 = load_config(overrides=["preset=paper", "model.arch=resnet", "model.depth=18",
                                   "model.pretrained_release=hara2020"])
    assert r2020.normalisation() == hara.KINETICS_2020 and r2020.shortcut() == "B"
    assert str(hara.pretrained_file(r2020.to_dict()["model"], 16)).endswith("r3d18_K_200ep.pth")
    custom = load_config(overrides=["preset=paper", "input.normalization=custom", "input.mean=[0.5,0.5,0.5]"])
    assert custom.normalisation().mean == (0.5, 0.5, 0.5) and custom.normalisation().value_scale == 1.0
    assert TINY.normalisation().name == "input"  # from scratch: the preset's own mean/std
    # One known frame, no resize: the exact network input under each release.
    frame = torch.tensor([0, 100, 200, 255], dtype=torch.uint8).view(1, 1, 1, 4, 1).expand(1, 1, 1, 4, 3).contiguous()
    h, w = torch.tensor([1]), torch.tensor([4])

    def net_input(norm):  # each pixel column cropped at 1x1: no resize, so the values pass unchanged
        return torch.stack([crop_resize(frame, torch.tensor([[float(i), 0.0, i + 1.0, 1.0]]), 1, norm, h, w)
                            [0, :, 0, 0, 0] for i in range(4)])  # (4 pixels, 3 channels)

    x18 = net_input(hara.ACTIVITYNET_2018)
    expected18 = torch.tensor([[p - 114.7748, p - 107.7354, p - 99.4750] for p in (0, 100, 200, 255)])
    assert torch.allclose(x18, expected18, atol=1e-4)
    assert abs(float(x18[2, 0]) - 85.2252) < 1e-4  # [0, 255] minus the ActivityNet mean, std 1
    x20 = net_input(hara.KINETICS_2020)
    m, s = (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)
    expected20 = torch.tensor([[(p / 255 - m[c]) / s[c] for c in range(3)] for p in (0, 100, 200, 255)])
    assert torch.allclose(x20, expected20, atol=1e-5)
    assert abs(float(x20[2, 0]) - 1.26378) < 1e-4  # [0, 1] inputs, Kinetics mean/std


@pytest.mark.slow
def test_model_pt_records_the_load_and_a_finetune_from_our_model_checks_normalisation(in_tiny_workdir: Path) -> None:
    from asnet.train.loop import train_run

    src = in_tiny_workdir / "pre" / "kinetics_like.pth"
    src.parent.mkdir(exist_ok=True)
    _save_like("hara2018", _source("resnet", 10, None, 400, width=8), src)
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", f"model.pretrained={src}",
                                 "model.pretrained_release=hara2018"])
    out = train_run(cfg, paths.manifest("synthetic_tiny", 1), paths.frames_dir("synthetic_tiny"),
                    in_tiny_workdir / "pre_run", "single", progress=False)
    ck = torch.load(out, weights_only=True)
    assert ck["pretrained"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert ck["pretrained"]["tensors_loaded"] > 0 and ck["pretrained"]["release"] == "hara2018"
    assert ck["normalisation"] == hara.ACTIVITYNET_2018.to_dict()
    from asnet.train.evaluate import evaluate_run

    metrics = evaluate_run(out, paths.manifest("synthetic_tiny", 1), paths.frames_dir("synthetic_tiny"),
                           in_tiny_workdir / "pre_eval", progress=False)
    assert metrics["pretrained"] == ck["pretrained"] and metrics["normalisation"]["name"] == "hara2018_activitynet"
    # Fine-tuning from that model.pt with another normalisation is refused, naming both.
    again = load_config(overrides=["preset=tiny", f"model.pretrained={out}"])
    with pytest.raises(PretrainedMismatch, match="hara2018_activitynet"):
        load_pretrained(build_model(again.model, 3, 1), out, again)


# --------------------------------------------------------------------------- checked when planned


def _own_file(tmp_path: Path, name: str = "kinetics_tiny.pth"):
    """A Hara-2018-layout file of the tiny backbone under a name of the user's, and the tiny
    config that starts every run from it."""
    path = tmp_path / name
    cfg = with_overrides(TINY, {"model.pretrained": str(path), "model.pretrained_release": "hara2018"})
    torch.manual_seed(0)
    _save_like("hara2018", build_model(cfg.model, 400, 1).backbone, path)
    return path, cfg


def test_check_pretrained_loads_each_input_file_once_and_records_it(tmp_path: Path, monkeypatch) -> None:
    from asnet import stages

    monkeypatch.chdir(tmp_path)
    path, cfg = _own_file(tmp_path)
    (entry,) = stages.check_pretrained(cfg)
    assert entry["path"] == str(path) and entry["release"] == "hara2018" and entry["tensors_loaded"] > 0
    assert entry["variant"] == cfg.variants[0]
    record = tmp_path / "results" / "pretrained_check.json"
    assert record.is_file() and stages.check_pretrained(cfg) == [entry]
    # a truncated download: same name, new size, so it is loaded again and fails naming the key
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as info:
        stages.check_pretrained(cfg)
    msg = str(info.value)
    assert msg.startswith(f"model.pretrained: the file variant {cfg.variants[0]} starts from does not load: {path}")
    assert "not a PyTorch checkpoint of tensors" in msg and "weights_only=False" not in msg


def test_check_pretrained_reads_nothing_without_a_published_input(tmp_path: Path, monkeypatch) -> None:
    from asnet import stages

    monkeypatch.chdir(tmp_path)
    assert stages.check_pretrained(TINY) == []  # from scratch
    # the pretraining run's model.pt is the workflow's own output: its train job checks it
    (tmp_path / paths.pretrain_model("synthetic_tiny_source")).parent.mkdir(parents=True)
    (tmp_path / paths.pretrain_model("synthetic_tiny_source")).write_bytes(b"half a file")
    own = with_overrides(TINY, {"model.pretrained": str(paths.pretrain_model("synthetic_tiny_source"))})
    assert stages.check_pretrained(own) == []
    assert not (tmp_path / "results" / "pretrained_check.json").exists()


def test_a_truncated_pretrained_file_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    path, _ = _own_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    config = tmp_path / "own.yaml"
    config.write_text(f"preset: tiny\nmodel: {{pretrained: {path}, pretrained_release: hara2018}}\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--directory", str(tmp_path), "--cores", "1",
                           "results/table6.tex", "--configfile", str(config)],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert f"model.pretrained: the file variant single starts from does not load: {path}" in out, out[-3000:]
    # planning failed: no job ran, so nothing was generated or extracted
    assert not (tmp_path / "results" / "logs").exists() and not (tmp_path / "data").exists()
