"""Typed YAML config: _base_ inheritance, overrides, validation with key paths and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from posetune.config import get_by_path, load_config, set_by_path
from posetune.config.loader import parse_value
from posetune.config.presets import list_presets
from posetune.errors import ConfigError


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg.train.optimizer.type == "adamw"
    assert cfg.model.codec.input_size == (192, 256)


def test_base_inheritance_order_and_merge(tmp_path):
    write(tmp_path / "a.yaml", "name: a\ntrain: {epochs: 3, optimizer: {type: sgd, momentum: 0.8}}\n"
                               "train_list: 1\n".replace("train_list: 1\n", ""))
    write(tmp_path / "b.yaml", "name: b\ntrain: {optimizer: {lr: 0.01}}\ndata: {augment: {scale: [0.5, 1.5]}}\n")
    write(tmp_path / "sub" / "c.yaml", "_base_: [../a.yaml, ../b.yaml]\ntrain: {epochs: 7}\n"
                                       "data: {augment: {scale: [0.9, 1.1]}}\n")
    cfg = load_config(tmp_path / "sub" / "c.yaml")
    assert cfg.name == "b"  # later base wins
    assert cfg.train.epochs == 7  # the file itself wins over its bases
    assert cfg.train.optimizer.type == "sgd" and cfg.train.optimizer.momentum == 0.8  # dicts merge
    assert cfg.train.optimizer.lr == 0.01
    assert cfg.data.augment.scale == (0.9, 1.1)  # lists replace


def test_base_single_string_and_loop(tmp_path):
    write(tmp_path / "x.yaml", "_base_: y.yaml\n")
    write(tmp_path / "y.yaml", "_base_: x.yaml\n")
    with pytest.raises(ConfigError, match="loop"):
        load_config(tmp_path / "x.yaml")


def test_missing_base_names_file_and_key(tmp_path):
    write(tmp_path / "x.yaml", "_base_: nope.yaml\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "x.yaml")
    assert "nope.yaml" in str(e.value) and "_base_" in str(e.value)


def test_overrides_are_typed(tmp_path):
    cfg = load_config(None, ["train.optimizer.lr=3e-4", "train.epochs=12", "train.amp=true",
                             "train.optimizer.betas=[0.8, 0.99]", "train.clip_grad=null", "name=my run"])
    assert cfg.train.optimizer.lr == pytest.approx(3e-4) and isinstance(cfg.train.optimizer.lr, float)
    assert cfg.train.epochs == 12 and cfg.train.amp is True
    assert cfg.train.optimizer.betas == (0.8, 0.99)
    assert cfg.train.clip_grad is None and cfg.name == "my run"
    assert parse_value("1e-3") == pytest.approx(1e-3)
    assert parse_value("[1, 2]") == [1, 2]


def test_yaml_float_without_dot_is_a_float(tmp_path):
    p = write(tmp_path / "c.yaml", "train:\n  optimizer:\n    lr: 5e-4\n")
    assert load_config(p).train.optimizer.lr == pytest.approx(5e-4)


def test_unknown_key_names_path_file_and_suggests(tmp_path):
    p = write(tmp_path / "c.yaml", "train:\n  optimizr: {lr: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "train.optimizr" in msg and str(p.resolve()) in msg and "optimizer" in msg


def test_wrong_type_names_path_and_source(tmp_path):
    base = write(tmp_path / "base.yaml", "train: {epochs: ten}\n")
    p = write(tmp_path / "c.yaml", "_base_: base.yaml\nname: x\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "train.epochs" in str(e.value) and str(base.resolve()) in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.epochs=2.5"])
    assert "train.epochs" in str(e.value) and "command line" in str(e.value)


def test_override_errors(tmp_path):
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="not a section"):
        load_config(None, ["name=a", "name.x=1"])
    with pytest.raises(ConfigError, match="'name'"):
        load_config(None, ["name.x=1"])
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(None, ["train.nope=1"])


def test_invalid_yaml_reports_line(tmp_path):
    p = write(tmp_path / "bad.yaml", "train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and "invalid YAML" in str(e.value)


def test_duplicate_key_is_an_error(tmp_path):
    p = write(tmp_path / "dup.yaml", "name: a\nname: b\n")
    with pytest.raises(ConfigError, match="twice"):
        load_config(p)


def test_get_set_by_path():
    cfg = load_config(None)
    cfg2 = set_by_path(cfg, "train.optimizer.lr", 0.123)
    assert get_by_path(cfg2, "train.optimizer.lr") == pytest.approx(0.123)
    assert cfg.train.optimizer.lr != 0.123
    cfg3 = set_by_path(cfg, "model.backbone.name", "hrnet_w32")
    assert cfg3.model.backbone.name == "hrnet_w32"


def test_shipped_presets_validate():
    presets = list_presets()
    assert presets, "posetune ships config presets in configs/"
    for name, path in presets:
        load_config(path)  # raises on any invalid preset


def test_config_reference_doc_is_up_to_date():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("gen_config_docs", root / "tools" / "gen_config_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (root / "docs" / "configs.md").read_text(encoding="utf-8")
    assert mod.reference() in text, "run: python tools/gen_config_docs.py"
