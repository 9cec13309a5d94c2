"""Train's options generated from TrainConfig's fields, and TOML recipes merged under the command line."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from aerialseg.cli.train import add_arguments, config_from_args
from aerialseg.errors import InputError
from aerialseg.trainconfig import FIELDS, GROUPS, TrainConfig, flag, load_config, read_recipe

ROOT = Path(__file__).resolve().parents[1]


def _parse(*argv: str | Path) -> TrainConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args([str(a) for a in argv]))


def test_every_field_is_an_option_with_help_in_a_group():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    for f in FIELDS.values():
        assert f.metadata["help"] and f.metadata["group"] in GROUPS, f.name
        action = actions["no_progress" if f.name == "progress" else f.name]
        assert action.option_strings == [flag(f)] and action.help.startswith(f.metadata["help"].replace("%", "%%"))
    assert flag(FIELDS["data_root"]) == "--data" and flag(FIELDS["gsd_m"]) == "--gsd"


def test_no_options_give_the_defaults_and_options_their_types():
    assert _parse("--out", "r") == TrainConfig(out_dir="r")
    config = _parse("--out", "r", "--class-names", "a, b ,c", "--tile-scales", "7=0.5,3=2", "--decoder-channels",
                    "16,8,8", "--scale-jitter", "0.5,2", "--gsd", "0.25", "--no-progress", "--epochs", "3",
                    "--optimizer", "sgd", "--scheduler", "plateau", "--split", "stratified")
    assert config.class_names == ("a", "b", "c") and config.tile_scales == (("7", 0.5), ("3", 2.0))
    assert config.decoder_channels == (16, 8, 8) and config.scale_jitter == (0.5, 2.0) and config.gsd_m == 0.25
    assert not config.progress and config.epochs == 3
    assert (config.optimizer, config.scheduler, config.split) == ("sgd", "plateau", "stratified")


def test_a_recipe_sets_options_and_the_command_line_overrides_it(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('out = "runs/a"\ndataset = "folder"\nclass_names = ["x", "y"]\nlr = 1\nepochs = 7\n'
                      'tile-scales = { "7" = 0.55 }\ndecoder-channels = "32,16"\nno-progress = true\ngsd = 0.5\n')
    config = _parse("--config", recipe, "--epochs", "2")
    assert config.out_dir == "runs/a" and config.dataset == "folder" and config.class_names == ("x", "y")
    assert config.lr == 1.0 and isinstance(config.lr, float) and config.epochs == 2
    assert config.tile_scales == (("7", 0.55),) and config.decoder_channels == (32, 16)
    assert not config.progress and config.gsd_m == 0.5
    assert _parse("--config", recipe, "--out", "elsewhere").out_dir == "elsewhere"


def test_python_loads_a_recipe_with_overrides_as_the_command_line_does(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('out = "runs/a"\ndataset = "folder"\nclass_names = ["x", "y"]\nepochs = 7\n')
    config = load_config(recipe, {"epochs": 2, "out_dir": "runs/b"})
    assert config == _parse("--config", recipe, "--epochs", "2", "--out", "runs/b")
    assert load_config(overrides={"out_dir": "r"}) == TrainConfig(out_dir="r") and load_config() == TrainConfig()
    with pytest.raises(InputError, match="unknown training setting.* epoch"):
        load_config(recipe, {"epoch": 2})
    with pytest.raises(InputError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(("text", "message"), [
    ("no_such_option = 1\n", "unknown option 'no_such_option' in .*bad.toml"),
    ("epochs = 2.5\n", "invalid value 2.5 of 'epochs' in .*bad.toml"),
    ("epochs = \"many\"\n", "invalid value 'many' of 'epochs'"),
    ("optimizer = \"adam\"\n", "'optimizer' in .*bad.toml must be one of adamw, sgd"),
    ("no-progress = \"yes\"\n", "expected bool"),
    ("epochs = \n", "bad.toml is not valid TOML"),
])
def test_recipe_errors_name_the_key_and_the_file(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(InputError, match=message):
        _parse("--config", tmp_path / "bad.toml", "--out", "r")


def test_out_is_required_somewhere():
    from aerialseg.train import check_config

    with pytest.raises(InputError, match="--out is required"):
        _parse("--epochs", "2")
    with pytest.raises(InputError, match="--out is required"):  # never the current folder by default
        check_config(TrainConfig())


def test_saved_configs_of_older_runs_still_load():
    old = TrainConfig(out_dir="r").to_dict()
    for new in ("class_colours", "split", "optimizer", "lr_decay", "lr_patience"):
        old.pop(new)
    assert TrainConfig.from_dict(old) == TrainConfig(out_dir="r")
    assert TrainConfig.from_dict(dataclasses.replace(TrainConfig(out_dir="r"), tile_scales=(("7", 0.5),)).to_dict()
                                 ).tile_scales == (("7", 0.5),)


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.toml")), ids=lambda p: p.stem)
def test_the_shipped_recipes_read(recipe):
    values = read_recipe(recipe)
    assert {"dataset", "arch", "encoder", "name"} <= values.keys()
    assert TrainConfig(**{"out_dir": "r", **values}).name == values["name"]


@pytest.mark.slow
def test_command_line_recipe_error_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("learning_rate = 0.1\n")
    r = subprocess.run([sys.executable, "-m", "aerialseg.cli", "train", "--config", str(tmp_path / "bad.toml"),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"aerialseg: error: --config: unknown option 'learning_rate' in {tmp_path / 'bad.toml'}; "
        "see aerialseg train --help"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--class-colours", "c.csv"], "--class-colours is for --dataset folder"),
    (["--split", "stratified"], "--split stratified is for folder and vector data; dubai has its own splits"),
    (["--lr-decay", "1.5"], "--lr-decay must be 0"),
    (["--lr-patience", "-1"], "--lr-patience must be 0 or more"),
])
def test_options_that_do_not_fit_the_run_are_refused(options, message):
    from aerialseg.train import check_config

    with pytest.raises(InputError, match=message):
        check_config(_parse("--out", "r", *options))
