"""Configuration: presets resolve, bad values fail early naming the key."""

import pytest
import yaml

from asnet.config import ConfigError, load_config, parse_overrides, validate


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


# --- bad input gives one clear ConfigError (issue 12) ---


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["train.epochs=[1"], r"override 'train.epochs=\[1': not a plain YAML value: expected ',' or '\]'.*column 3"),
        (["train=5", "train.epochs=3"], r"train was already set to 5 by an earlier --set"),
        (["train..epochs=3"], r"empty key part"),
    ],
)
def test_malformed_overrides_are_config_errors(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_overrides(overrides)


def test_python_tags_are_refused_not_constructed(tmp_path):
    marker = tmp_path / "ran"
    for text in (f"k=!!python/object/apply:os.system ['touch {marker}']", "k=!!python/name:os.system"):
        with pytest.raises(ConfigError, match=r"YAML tags are not allowed \(!!python/"):
            parse_overrides([text])
    config = tmp_path / "c.yaml"
    config.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=rf"{config}: not valid YAML: YAML tags are not allowed"):
        load_config(config)
    assert not marker.exists()


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=rf"{tmp_path}: is a directory; expected a YAML config file"):
        load_config(tmp_path)


def test_malformed_config_file_names_line_and_column(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ntrain: {epochs: 3\n")
    with pytest.raises(ConfigError, match=rf"{config}: not valid YAML: .* at line 3, column 1") as exc:
        load_config(config)
    assert "\n" not in str(exc.value)


def test_yaml12_floats_in_config_files_and_overrides(tmp_path):
    """`lr: 1e-3` is a number (YAML 1.1 alone reads it as the string '1e-3')."""
    config = tmp_path / "c.yaml"
    config.write_text("preset: tiny\ntrain: {lr: 1e-3, weight_decay: 2E-5}\nspa: {lr: 5e-5, omega: -5e0}\n")
    cfg = load_config(config)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.spa.lr, cfg.spa.omega) == (0.001, 2e-5, 5e-5, -5.0)
    assert load_config(overrides=["preset=tiny", "train.lr=1e-3"]).train.lr == 0.001
    assert parse_overrides(["a=1E5", "b=-2.5e+3", "c=.5", "d=-.5", "e=.inf", "f=3", "g=1e", "h=e5", "i=0x10"]) == {
        "a": 1e5, "b": -2500.0, "c": 0.5, "d": -0.5, "e": float("inf"), "f": 3, "g": "1e", "h": "e5", "i": 16,
    }
    # Only the project's loader changes: PyYAML's own safe_load (as DVC reads params.yaml) does not.
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}


def test_yaml11_float_strings_from_snakemake_become_numbers():
    """Snakemake reads config files with YAML 1.1 rules: its `config` holds '1e-3' strings."""
    from asnet.config import from_dict, resolve

    cfg = from_dict(resolve({"preset": "tiny", "train": {"lr": "1e-3"}, "input": {"scales": ["1e0", 0.5]}}))
    assert cfg.train.lr == 0.001 and cfg.input.scales == (1.0, 0.5)
    # a string where the schema wants a string stays one
    assert resolve({"preset": "tiny", "datasets": [{"name": "1e3", "kind": "synthetic"}]})["datasets"][0]["name"] == "1e3"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.arch=resnet", "model.depth=121"], r"model.depth: resnet has no depth 121; set model.depth to one of "
                                                   r"10, 18, 34, 50, 101, 152, 200, or model.arch to densenet"),
        (["model.arch=resnext", "model.depth=18"], r"model.depth: resnext has no depth 18.* 50, 101, 152, or model.arch to resnet"),
        (["model.arch=densenet", "model.depth=50"], r"model.depth: densenet has no depth 50"),
        (["model.arch=resnext", "model.depth=50", "model.width=8"], r"model.width: resnext needs width >= 16"),
    ],
)
def test_arch_depth_pairs_are_validated_with_the_config(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(overrides=["preset=tiny", *overrides])


def test_every_depth_the_config_accepts_builds():
    """The config's arch/depth check and the backbone builder read one table."""
    from asnet.depths import DEPTHS
    from asnet.models.resnet3d import BackboneSpec

    for arch, depths in DEPTHS.items():
        for depth in depths:
            load_config(overrides=["preset=paper", "model.pretrained_dir=null", f"model.arch={arch}", f"model.depth={depth}"])
            BackboneSpec(arch=arch, depth=depth, width=16)


def test_table2_backbones_are_valid_pairs():
    from asnet.config import with_overrides
    from asnet.variants import TABLE2_BACKBONES

    cfg = load_config(overrides=["preset=paper"])
    for _, _, overrides in TABLE2_BACKBONES.values():
        with_overrides(cfg, overrides)


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


def test_pretrain_source_shares_no_video_with_the_target():
    """The same seed would render target videos into the source set: refused, naming the key."""
    with pytest.raises(ConfigError, match="pretrain.dataset.synthetic.seed: 0 is also datasets\\[synthetic\\]'s seed"):
        load_config(overrides=["pretrain.dataset.synthetic.seed=0"])
    with pytest.raises(ConfigError, match="pretrain.dataset.name: 'synthetic' is also a target"):
        load_config(overrides=["pretrain.dataset.name=synthetic", "model.pretrained=results/pretrain/synthetic/model.pt"])
    data = load_config().to_dict()
    del data["pretrain"]["dataset"]["synthetic"]["seed"]
    with pytest.raises(ConfigError, match="pretrain.dataset.synthetic: 'seed' is a required property"):
        validate(data)  # the source names its own seed
    with pytest.raises(ConfigError, match="pretrain.dataset.kind"):  # generated sets only
        load_config(overrides=["pretrain.dataset.kind=ucf101"])


def test_model_pretrained_must_name_the_configured_pretraining_run():
    cfg = load_config()
    assert cfg.model.pretrained == f"results/pretrain/{cfg.pretrain.dataset.name}/model.pt"
    with pytest.raises(ConfigError, match="model.pretrained: results/pretrain/other/model.pt is not the configured "
                                          "pretraining run's model.pt; set it to results/pretrain/synthetic_source"):
        load_config(overrides=["model.pretrained=results/pretrain/other/model.pt"])
    with pytest.raises(ConfigError, match="no `pretrain:` section"):
        load_config(overrides=["pretrain=null"])
    assert load_config(overrides=["pretrain=null", "model.pretrained=null"]).pretrain is None
