import numpy as np
import pytest

from emorank.losses import LOSSES
from emorank.training.systems import CAPTION_BUILDERS, SYSTEMS, get_system, make_caption_builder, prepare_data
from emorank.training.trainer import TrainConfig, train

from conftest import make_prepared

PAPER_ROWS = ["clap-template", "clap4emo", "paraclap", "clap-sce-av", "supcon-av", "smoothclap", "ra-clap",
              "emotionrankclap"]
OURS = ["emotionrankclap-plus"]


def test_registry_has_every_seed_system_with_known_parts():
    assert list(SYSTEMS) == PAPER_ROWS + OURS  # the paper's rows in its order, then ours
    for s in SYSTEMS.values():
        assert s.loss in LOSSES and s.captions in CAPTION_BUILDERS
        assert s.interpretation and s.paper
    assert get_system("emotionrankclap").loss == "rnc"
    assert get_system("ra-clap").teacher == "clap-sce-av"
    assert {s.name for s in SYSTEMS.values() if s.va_captions} == {
        "clap-sce-av", "supcon-av", "smoothclap", "ra-clap", "emotionrankclap", "emotionrankclap-plus"}
    plus = get_system("emotionrankclap-plus")
    assert plus.loss == "rnc-sce" and plus.loss_kwargs == {"sce_weight": 0.5, "symmetric": True}
    assert "ours" in plus.title and "not in any paper" in plus.interpretation


@pytest.mark.parametrize("name", [n for n in PAPER_ROWS + OURS if n != "ra-clap"])
def test_each_system_improves_its_own_validation_loss(name, tmp_path):
    data = make_prepared(seed=1)
    cfg = TrainConfig(system=name, epochs=5, lr=1e-3, batch_size=32, device="cpu")
    result = train(data.manifest, cfg, tmp_path / name, data=data, progress=False)
    losses = [h["val_loss"] for h in result.history]
    assert all(np.isfinite(losses))
    assert min(losses[1:]) < losses[0]


def test_caption_builders_follow_each_system(demo_manifest):
    rows = demo_manifest.subset(np.arange(12))
    va = make_caption_builder("va").fit(rows).build(rows)
    assert all(c.startswith("The person is speaking") for c in va)
    template = make_caption_builder("template").fit(rows).build(rows)
    assert all(c.startswith("speech has ") and c.endswith(" emotion") for c in template)
    assert template[0] == f"speech has {rows.emotion[0]} emotion" or rows.emotion[0] == ""
    lexicon = make_caption_builder("lexicon").fit(rows).build(rows)
    assert len(set(lexicon)) > 6 and not any(ch.isdigit() for c in lexicon for ch in c)


def test_prepare_data_for_paraclap_measures_and_captions_acoustics(demo_manifest, session_cache):
    cfg = TrainConfig(system="paraclap", workers=1)
    data = prepare_data(demo_manifest, get_system("paraclap"), cfg, cache=session_cache, progress=False)
    assert data.para is not None and data.para.shape == (len(data.manifest), 7)
    assert all(c.startswith("speaker ") for c in data.captions)
    assert any("pitch" in c for c in data.captions)
    assert data.caption_spec["builder"] == "acoustic"
    assert set(data.split) == {"train", "dev"}
    assert data.text.shape[0] == len(data.captions) == data.audio.shape[0]
