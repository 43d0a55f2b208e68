"""Presets: each holds only what differs from its base, defaults are written once, and
config/resolved/ shows every key a preset's runs see."""

from pathlib import Path
from typing import Any

import pytest

from asnet import config
from asnet.config import (
    PRESETS_DIR,
    REPO_ROOT,
    ConfigError,
    field_default,
    load_config,
    load_preset,
    load_yaml,
    resolved_yaml,
)

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of every non-mapping value (a list or a null counts as one value)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


@pytest.mark.parametrize("preset", PRESETS)
def test_resolved_files_are_current(preset: str) -> None:
    """config/resolved/<preset>.yaml is what the preset resolves to: a preset edit that changes
    a run shows in this file's diff, and trimming a preset must leave it unchanged."""
    path = REPO_ROOT / "config" / "resolved" / f"{preset}.yaml"
    cfg = load_config(overrides=[f"preset={preset}"])
    assert path.read_text() == resolved_yaml(cfg), (
        f"{path} is stale; if the change is meant, regenerate it: "
        f"asnet config --set preset={preset} > config/resolved/{preset}.yaml")
    assert load_config(path) == cfg  # and it is a config file that loads back


@pytest.mark.parametrize("preset", [p for p in PRESETS if p != "default"])
def test_a_derived_preset_holds_only_what_differs_from_its_base(preset: str) -> None:
    data = load_yaml(PRESETS_DIR / f"{preset}.yaml")
    base = data.pop("base", None)
    assert base, f"config/presets/{preset}.yaml: name a `base:` preset and keep only what differs"
    replaced = tuple(tuple(k.split(".")) for k in data.pop("replace", []))
    base_resolved = load_config(overrides=[f"preset={base}"]).to_dict()
    same = [".".join(path) for path, value in _leaves(data)
            if not any(path[:len(r)] == r for r in replaced) and _at(base_resolved, path) == value]
    assert not same, f"config/presets/{preset}.yaml repeats {base}'s value of {same}"


def test_the_root_preset_repeats_no_dataclass_default() -> None:
    """A default lives in one place: the dataclass field in asnet/config.py."""
    data = load_yaml(PRESETS_DIR / "default.yaml")
    repeated = []
    for path, value in _leaves(data):
        if len(path) == 2 and path[0] in config._SECTIONS:
            try:
                default = field_default(*path)
            except ConfigError:
                continue  # no default: the preset must set it
            if (list(default) if isinstance(default, tuple) else default) == value:
                repeated.append(".".join(path))
    assert not repeated, f"config/presets/default.yaml repeats the dataclass defaults of {repeated}"


def _write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.yaml").write_text(text)


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A presets folder with a root preset `root` (mapping sections merge key by key)."""
    _write(tmp_path, "root", "spa: {gamma: 0.5, lr: 0.1}\npretrain: {dataset: {synthetic: {seed: 1, actor_size: [3, 4]}}}\n")
    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    return tmp_path


def test_base_merges_key_by_key_and_replace_takes_a_section_whole(presets: Path) -> None:
    _write(presets, "merged", "base: root\nspa: {lr: 0.2}\npretrain: {dataset: {synthetic: {seed: 2}}}\n")
    _write(presets, "replaced", "base: root\nreplace: [pretrain]\npretrain: {dataset: {synthetic: {seed: 2}}}\n")
    merged = load_preset("merged")
    assert merged["spa"] == {"gamma": 0.5, "lr": 0.2}
    assert merged["pretrain"]["dataset"]["synthetic"] == {"seed": 2, "actor_size": [3, 4]}
    assert load_preset("replaced")["pretrain"] == {"dataset": {"synthetic": {"seed": 2}}}
    assert load_preset("replaced")["spa"] == {"gamma": 0.5, "lr": 0.1}


@pytest.mark.parametrize("text, message", [
    ("base: root\nreplace: [spa]\n", "`replace:` names 'spa', which this preset does not set"),
    ("replace: [spa]\nspa: {lr: 1}\n", "`replace:` needs a `base:` preset"),
    ("base: root\nreplace: spa\nspa: {lr: 1}\n", "`replace:` must be a list of dotted keys"),
    ("base: nowhere\n", "unknown preset 'nowhere' \\(the `base:` of preset 'bad'\\); choose one of: bad, root"),
    ("base: bad\n", "circular `base:` chain bad -> bad"),
])
def test_bad_base_or_replace_is_named(presets: Path, text: str, message: str) -> None:
    _write(presets, "bad", text)
    with pytest.raises(ConfigError, match=message):
        load_preset("bad")


def test_tiny_keeps_its_own_source_set() -> None:
    """Without `replace: [pretrain]` tiny's source set would take the default's actor sizes."""
    synthetic = load_config(overrides=["preset=tiny"]).pretrain.dataset.synthetic
    assert "actor_size" not in synthetic and "distractors" not in synthetic
