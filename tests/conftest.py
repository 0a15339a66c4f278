"""Shared fixtures: synthetic cached features (fast, no audio) and a tiny demo corpus (real audio, built once)."""
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def make_prepared(n_train=192, n_dev=64, seed=0, noise=0.5, audio_dim=12, text_dim=10):
    """PreparedData whose audio and text features are noisy linear functions of (valence, arousal)."""
    from emorank.data.manifest import Manifest
    from emorank.training.systems import PreparedData

    rng = np.random.default_rng(seed)
    n = n_train + n_dev
    va = rng.uniform(1, 7, size=(n, 2)).astype(np.float32)
    wa, wt = rng.normal(size=(2, audio_dim)), rng.normal(size=(2, text_dim))
    audio = (va - 4) @ wa + noise * rng.normal(size=(n, audio_dim))
    text = (va - 4) @ wt + 0.1 * rng.normal(size=(n, text_dim))
    split = ["train"] * n_train + ["dev"] * n_dev
    manifest = Manifest(path=[f"/synthetic/{i}.wav" for i in range(n)], valence=va[:, 0], arousal=va[:, 1],
                        split=split, speaker=[f"s{i % 8}" for i in range(n)], root="/synthetic")
    classes = (va[:, 0] >= 4).astype(np.int64) * 2 + (va[:, 1] >= 4).astype(np.int64)  # V-A quadrants
    para = (va - 4) @ rng.normal(size=(2, 7)) + noise * rng.normal(size=(n, 7))
    return PreparedData(manifest=manifest, split=np.asarray(split, dtype=object), audio=audio.astype(np.float32),
                        text=text.astype(np.float32), captions=[f"c{i}" for i in range(n)], labels=va,
                        classes=classes, class_names=["q0", "q1", "q2", "q3"], audio_fingerprint="synthetic-a",
                        text_fingerprint="synthetic-t", caption_spec={"builder": "va", "seed": 0},
                        para=para.astype(np.float32))


@pytest.fixture
def prepared():
    return make_prepared()


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small synthetic eSpeak corpus (manifest path), built once per test session."""
    from emorank.data.synthetic import build_demo_corpus

    return build_demo_corpus(tmp_path_factory.mktemp("corpus") / "demo", n=120, seed=3, progress=False)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    from emorank.encoders.cache import FeatureCache

    with FeatureCache(tmp_path_factory.mktemp("cache") / "features.sqlite") as cache:
        yield cache


@pytest.fixture(scope="session")
def demo_manifest(demo_corpus):
    from emorank.data.manifest import read_csv_manifest
    return read_csv_manifest(demo_corpus)


@pytest.fixture(scope="session")
def trained_checkpoint(demo_manifest, session_cache, tmp_path_factory):
    """EmotionRankCLAP trained briefly on the small demo corpus with the offline encoders."""
    from emorank.training.trainer import TrainConfig, train

    cfg = TrainConfig(epochs=6, lr=1e-3, batch_size=32, device="cpu", workers=1)
    return train(demo_manifest, cfg, tmp_path_factory.mktemp("runs") / "erc", cache=session_cache,
                 progress=False).checkpoint


@pytest.fixture(scope="session")
def app_demo(tmp_path_factory):
    """The demo the app builds at its first start (DEMO_N clips, DEMO_SEED; features of the test split) with the
    shipped checkpoints: what a visitor's Explore tab searches by default (about 30 s, once per session)."""
    from emorank.app.build import ensure_demo
    from emorank.app.bounds import REPO_DIR

    root = tmp_path_factory.mktemp("app-demo")
    return ensure_demo(root / "data", lambda f, m: None, checkpoint_dirs=[REPO_DIR / "checkpoints"],
                       cache_path=root / "features.sqlite")
