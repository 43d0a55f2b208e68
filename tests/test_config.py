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
