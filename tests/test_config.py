"""Configuration: presets resolve, bad values fail early naming the key."""

import pytest

from asnet.config import ConfigError, load_config, parse_overrides


def test_presets_resolve():
    for preset in ("default", "paper", "paper64", "tiny"):
        cfg = load_config(overrides=[f"preset={preset}"])
        assert cfg.preset == preset and cfg.splits


def test_overrides_are_yaml_not_eval():
    assert parse_overrides(["train.epochs=3", "spa.reward_sign=printed", "x=__import__('os')"]) == {
        "train": {"epochs": 3}, "spa": {"reward_sign": "printed"}, "x": "__import__('os')",
    }


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.lr=-1", "train.lr"),
        ("train.lr=fast", "train.lr"),
        ("spa.actions=5", "spa.actions"),
        ("model.arch=vgg", "model.arch"),
        ("train.epoch=3", "train"),  # misspelt key
        ("splits=[4]", "splits.0"),
        ("variants=[nope]", "variants.0"),
        ("spa.state_scale=1.5", "spa.state_scale"),
        ("spa.state_scale=0.01", "spa.state_scale"),  # 1 pixel: caught by the cross-key check
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=[override])
    assert f"{key}:" in str(exc.value)


def test_misspelt_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match="allowed keys here: .*epochs"):
        load_config(overrides=["train.epoch=3"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'fast'.*default"):
        load_config(overrides=["preset=fast"])


@pytest.mark.parametrize("preset", ["default", "paper", "paper64", "tiny"])
def test_run_config_file_round_trips(tmp_path, preset):
    """The file the train rule hands to torchrun's workers loads back to the same Config."""
    from asnet.train.launch import torchrun_command, write_run_config

    cfg = load_config(overrides=[f"preset={preset}", "train.nproc_per_node=4", "train.lr=0.123"])
    path = write_run_config(cfg, tmp_path / "run" / "train_config.yaml")
    assert load_config(path) == cfg and not list(path.parent.glob("*.tmp"))
    cmd = torchrun_command(path, "ucf101", 2, "asnet", cfg.train.nproc_per_node)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4"]
    assert cmd[6:] == ["-m", "asnet.cli", "train", "--config", str(path),
                       "--dataset", "ucf101", "--split", "2", "--variant", "asnet"]


def test_nproc_per_node_must_be_positive():
    with pytest.raises(ConfigError, match="train.nproc_per_node:"):
        load_config(overrides=["train.nproc_per_node=0"])
    assert load_config(overrides=["preset=tiny"]).train.nproc_per_node == 1


def test_keys_at_their_neutral_default_do_not_shape_a_run() -> None:
    """A key added after runs existed, at the value that trains what older code trained, is
    left out of the digest/resume comparison; any other value is in it."""
    from asnet.config import NEUTRAL_DEFAULTS, run_shaping

    cfg = load_config(overrides=["preset=tiny"])
    shaped = run_shaping(cfg.to_dict())
    assert all(key not in shaped[section] for section, key in NEUTRAL_DEFAULTS)
    other = load_config(overrides=["preset=tiny", "model.shortcut=B", "input.normalization=custom"])
    assert run_shaping(other.to_dict())["model"]["shortcut"] == "B"
    assert run_shaping(other.to_dict())["input"]["normalization"] == "custom"
