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


def write_tone_corpus(folder, n: int = 24, seed: int = 0) -> list[dict]:
    """`n` short voiced-like clips (harmonics + noise, pitch and loudness varying) under folder/spk*/; returns rows
    (file relative to folder, labels, speaker, split)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        spk = f"spk{i % 3}"
        (folder / spk).mkdir(parents=True, exist_ok=True)
        t = np.arange(int(16000 * 0.6)) / 16000
        f0 = rng.uniform(90, 300)
        wave = sum(np.sin(2 * np.pi * f0 * h * t * (1 + 0.05 * np.sin(3 * t))) / h for h in range(1, 6))
        wave = rng.uniform(0.05, 0.4) * wave / 3 + 0.01 * rng.normal(size=t.size)
        sf.write(folder / spk / f"clip{i:02d}.wav", wave.astype(np.float32), 16000)
        rows.append({"file": f"{spk}/clip{i:02d}.wav", "valence": 1 + rng.integers(0, 31) / 5,
                     "arousal": 1 + rng.integers(0, 31) / 5, "speaker": spk, "split": "train" if i < 16 else "dev"})
    return rows


def write_manifest(csv_path, rows, paths) -> None:
    import csv

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "valence", "arousal", "speaker", "split"])
        w.writerows([p, r["valence"], r["arousal"], r["speaker"], r["split"]] for p, r in zip(paths, rows))


def test_moving_a_corpus_or_listing_it_otherwise_trains_byte_identical_heads(tmp_path):
    """Caption phrasing was seeded by the row id, the path relative to the manifest's folder: a manifest beside
    the corpus changed it when the corpus moved, and absolute paths through a symbolic link changed it too."""
    from emorank.data.manifest import read_csv_manifest
    from emorank.encoders.cache import FeatureCache

    corpus = tmp_path / "corpus"
    rows = write_tone_corpus(corpus)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", workers=1)
    heads, captions = [], []
    with FeatureCache(tmp_path / "features.sqlite") as cache:
        def run(csv_path, name):
            manifest = read_csv_manifest(csv_path)
            data = prepare_data(manifest, get_system("emotionrankclap"), cfg, cache=cache, progress=False)
            assert data.labels.dtype == np.float64 and np.array_equal(data.labels, manifest.va())
            captions.append(data.captions)
            out = train(manifest, cfg, tmp_path / name, cache=cache, progress=False)
            heads.append((out.checkpoint / "heads.safetensors").read_bytes())

        # 1. a manifest in its own folder, absolute paths
        write_manifest(tmp_path / "meta" / "train.csv", rows, [str(corpus / r["file"]) for r in rows])
        run(tmp_path / "meta" / "train.csv", "first")
        # 2. the corpus moved into an archive; the same manifest lists it with relative paths
        (tmp_path / "archive").mkdir()
        moved = corpus.rename(tmp_path / "archive" / "corpus")
        write_manifest(tmp_path / "meta" / "train.csv", rows, [f"../archive/corpus/{r['file']}" for r in rows])
        run(tmp_path / "meta" / "train.csv", "moved")
        # 3. a manifest inside the corpus, reached through a symbolic link, listing the real absolute paths
        (tmp_path / "link").symlink_to(tmp_path / "archive")
        write_manifest(moved / "manifest.csv", rows, [str(moved / r["file"]) for r in rows])
        run(tmp_path / "link" / "corpus" / "manifest.csv", "linked")
    assert captions[0] == captions[1] == captions[2]
    assert heads[0] == heads[1] == heads[2]
