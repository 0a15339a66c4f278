"""Checkpoint configs that are valid JSON of the wrong shape: whatever config.json holds, reading it gives the
config or a CheckpointError, and a list of checkpoints skips the folder with one warning line."""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emorank.model.card import checkpoint_dataset, checkpoint_license, model_card
from emorank.model.checkpoint import CheckpointError, ModelConfig, list_checkpoints, read_checkpoint_config
from emorank.model.core import EmotionRankCLAP, FeatureNormaliser

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def small_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    norm = FeatureNormaliser("global").fit(np.random.default_rng(0).normal(size=(20, 6)))
    model = EmotionRankCLAP(ModelConfig(audio_dim=6, text_dim=5, embed_dim=8), norm)
    return model.save(folder, system={"name": "emotionrankclap", "title": "EmotionRankCLAP (A-V)", "loss": "rnc"},
                      captions={"builder": "va", "seed": 0}, train={"epochs": 1}, metrics={"best_val_loss": 1.5},
                      history=[{"epoch": 0}], stopped=False, dataset="demo")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return small_checkpoint(tmp_path_factory.mktemp("template") / "ckpt")


def key_paths(node, prefix=()) -> list[tuple]:
    """Every key path of a config (objects only), parents before children."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append(prefix + (key,))
            out += key_paths(value, prefix + (key,))
    return out


def with_config(template: Path, config_text: str):
    """A copy of the template checkpoint whose config.json holds `config_text` (context: the folder)."""
    folder = Path(tempfile.mkdtemp()) / "ckpt"
    shutil.copytree(template, folder)
    (folder / "config.json").write_text(config_text)
    return folder


def read_or_refuse(folder: Path):
    try:
        config = read_checkpoint_config(folder)
    except CheckpointError as err:
        assert str(err).strip()
        return None
    assert isinstance(config, dict)
    return config


def check_consumers(folder: Path, config: dict | None) -> None:
    """What the app, the CLI and the Hub code read from a config works on anything read_checkpoint_config passes,
    loading gives a model or a CheckpointError, and a listing never raises: it lists the folder exactly when the
    config is readable."""
    listed = list_checkpoints([folder.parent])
    assert (config is not None) == ("ckpt" in listed)
    if config is not None:
        checkpoint_dataset(config)
        checkpoint_license(folder, config)
        assert model_card(folder).startswith("---")
        try:  # sizes are checked against bounds and the heads' header before anything is allocated
            EmotionRankCLAP.from_checkpoint(folder)
        except CheckpointError as err:
            assert str(err).strip()


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"emorank-checkpoint"', "3", "null", "true", "{}",
                                  '{"format": "emorank-checkpoint", "version": 1, "model": [], "normaliser": {}}',
                                  '{"format": "emorank-checkpoint", "version": 1}'])
def test_valid_json_of_the_wrong_shape_is_a_checkpoint_error(template, text):
    folder = with_config(template, text)
    with pytest.raises(CheckpointError):
        read_checkpoint_config(folder)
    with pytest.raises(CheckpointError):
        EmotionRankCLAP.from_checkpoint(folder)


def test_undecodable_or_deeply_nested_config_is_a_checkpoint_error(template):
    folder = with_config(template, "")
    (folder / "config.json").write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint_config(folder)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError):
        read_checkpoint_config(folder)


@pytest.mark.parametrize("path, value, fragment", [
    (("model",), [1], "model must be an object, got a JSON list"),
    (("model", "embed_dim"), "512", "model.embed_dim must be an integer, got a JSON string"),
    (("model", "audio_dim"), True, "model.audio_dim must be an integer, got a JSON boolean"),
    (("model", "audio_encoder_kwargs"), None, "model.audio_encoder_kwargs must be an object"),
    (("normaliser", "mode"), "zscore", "normaliser.mode must be one of speaker, global, utterance, none"),
    (("normaliser", "mean"), ["a"], "normaliser.mean must be a list of numbers"),
    (("system",), "emotionrankclap", "system must be an object"),
    (("system", "title"), {"x": 1}, "system.title must be a string or null"),
    (("captions", "seed"), 0.5, "captions.seed must be an integer"),
    (("stopped",), "no", "stopped must be true or false"),
])
def test_the_message_names_the_field_and_the_type_it_needs(template, path, value, fragment):
    config = json.loads((template / "config.json").read_text())
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    folder = with_config(template, json.dumps(config))
    with pytest.raises(CheckpointError, match=fragment):
        read_checkpoint_config(folder)


@SETTINGS
@given(value=json_values)
def test_fuzz_any_json_value_as_the_whole_config(template, value):
    folder = with_config(template, json.dumps(value))
    try:
        check_consumers(folder, read_or_refuse(folder))
    finally:
        shutil.rmtree(folder.parent)


@SETTINGS
@given(data=st.data(), value=json_values, delete=st.booleans())
def test_fuzz_any_field_replaced_by_any_json_value(template, data, value, delete):
    config = json.loads((template / "config.json").read_text())
    path = data.draw(st.sampled_from(key_paths(config)))
    node = config
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    folder = with_config(template, json.dumps(config))
    try:
        check_consumers(folder, read_or_refuse(folder))
    finally:
        shutil.rmtree(folder.parent)


def test_a_listing_skips_a_bad_folder_with_one_warning_line(template, tmp_path, caplog):
    shipped, runs = tmp_path / "checkpoints", tmp_path / "runs"
    shutil.copytree(template, shipped / "good")
    shutil.copytree(template, shipped / "bad")
    (shipped / "bad" / "config.json").write_text("[1, 2, 3]")
    shutil.copytree(template, runs / "mine" / "checkpoint")
    shutil.copytree(template, runs / "broken" / "checkpoint")
    (runs / "broken" / "checkpoint" / "config.json").write_text('{"format": "emorank-checkpoint", "version": 1, '
                                                                '"model": {"embed_dim": "x"}, "normaliser": {}}')
    with caplog.at_level(logging.WARNING, logger="emorank.model"):
        found = list_checkpoints([shipped], runs)
        assert list_checkpoints([shipped], runs) == found  # a second scan (an app refresh) says nothing new
    assert list(found) == ["good", "runs/mine"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("skipping checkpoint bad: ") and "not an object" in lines[0]
    assert lines[1].startswith("skipping checkpoint runs/broken: ") and "model.embed_dim" in lines[1]


def test_the_cli_says_what_is_wrong_with_such_a_config_and_exits_2(template, tmp_path, capsys):
    from emorank.cli import main

    folder = with_config(template, "[1, 2, 3]")
    rc = main(["evaluate", "--checkpoint", str(folder), "--manifest", str(tmp_path / "missing.csv"),
               "--cache", str(tmp_path / "c.sqlite")])
    err = capsys.readouterr().err
    assert rc == 2 and "holds a JSON list, not an object" in err and "Traceback" not in err
