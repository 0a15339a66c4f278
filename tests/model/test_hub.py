"""Hub checkpoints: loading by repo id from a real Hugging Face cache layout (offline), the model card, push --dry-run."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, scan_cache_dir

from emorank.cli import main
from emorank.model.hub import HubCheckpointError, resolve_checkpoint
from emorank.model.card import checkpoint_license, model_card, push_to_hub
from emorank.model.checkpoint import CheckpointError
from emorank.model.core import EmotionRankCLAP, ModelConfig

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "emotionrankclap"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    model = EmotionRankCLAP(ModelConfig(audio_dim=6, text_dim=5, embed_dim=8))
    return model.save(tmp_path / "small")


def write_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str = COMMIT) -> Path:
    """Lay a checkpoint out as huggingface_hub's cache does: blobs named by content hash, a snapshot of relative
    symlinks per commit, and refs/main holding the commit."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def _same_weights(a: EmotionRankCLAP, b: EmotionRankCLAP) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loads_by_repo_id_from_the_hub_cache_offline(small_checkpoint, offline_cache):
    snapshot = write_hub_cache(offline_cache, "someone/emorank-small", small_checkpoint)
    info = scan_cache_dir(offline_cache)  # huggingface_hub itself reads the layout we wrote
    assert [r.repo_id for r in info.repos] == ["someone/emorank-small"] and not info.warnings
    model = EmotionRankCLAP.from_pretrained("someone/emorank-small")
    assert _same_weights(model, EmotionRankCLAP.from_checkpoint(small_checkpoint))
    assert resolve_checkpoint("someone/emorank-small") == snapshot
    assert resolve_checkpoint("someone/emorank-small", revision=COMMIT) == snapshot
    feats = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    assert model.embed_audio_features(feats).shape == (3, 8)


def test_offline_and_not_cached_says_what_to_do(offline_cache):
    with pytest.raises(HubCheckpointError) as err:
        EmotionRankCLAP.from_pretrained("someone/not-downloaded")
    message = str(err.value)
    assert "someone/not-downloaded" in message and "HF_HUB_OFFLINE" in message and "local checkpoint folder" in message
    assert isinstance(err.value, CheckpointError)  # the app and the CLI already report these


def test_a_cached_repo_that_is_not_a_checkpoint_is_refused(tmp_path, offline_cache):
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    write_hub_cache(offline_cache, "someone/a-bert", other)
    with pytest.raises(CheckpointError, match="someone/a-bert"):
        EmotionRankCLAP.from_pretrained("someone/a-bert")


def test_local_folder_and_missing_path(small_checkpoint, offline_cache):
    assert _same_weights(EmotionRankCLAP.from_pretrained(small_checkpoint),
                         EmotionRankCLAP.from_checkpoint(small_checkpoint))
    with pytest.raises(CheckpointError, match="neither a folder"):
        EmotionRankCLAP.from_pretrained("./no/such/checkpoint")


def test_model_card_of_the_shipped_checkpoint():
    card = model_card(SHIPPED, "someone/emorank-demo", license="mit", dataset="demo")
    front = card.split("---\n")[1]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "emorank" and meta["license"] == "mit" and meta["datasets"] == ["demo"]
    assert "emorank" in meta["tags"]
    report = json.loads((SHIPPED / "eval.json").read_text())
    metrics = {m["name"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    expected = {"AOC": report["ordinality"]["aoc"]["mean"], "VOC": report["ordinality"]["voc"]["mean"],
                "MMD": report["alignment"]["mmd"]["mean"], "Wasserstein": report["alignment"]["wasserstein"]["mean"],
                "CCC arousal": report["va_estimation"]["ccc_arousal"],
                "Recall@1 audio→text": report["retrieval"]["a2t_r@1"]}
    for prefix, value in expected.items():
        [name] = [n for n in metrics if n.startswith(prefix)]
        assert metrics[name] == pytest.approx(value, abs=5e-5), name
    # huggingface_hub parses the same card (the Hub validates model-index this way)
    parsed = ModelCard(card).data
    assert parsed.library_name == "emorank" and len(parsed.eval_results) == len(metrics)
    body = card.split("---\n", 2)[2]
    for section in ("## System", "## Test metrics", "## How to load it", "## What it is not good at", "## Citation"):
        assert section in body
    assert 'EmotionRankCLAP.from_pretrained("someone/emorank-demo")' in body
    assert "egemaps" in body and "minilm" in body and "| epochs | `60` |" in body
    assert f"{report['ordinality']['aoc']['mean']:.4f}" in body
    assert "@misc{sureshchandra2025emotionrankclap" in body


def _without_corpus(folder):
    """A copy of a checkpoint whose config names no corpus (like checkpoints from before configs named one)."""
    config = json.loads((folder / "config.json").read_text())
    config.pop("dataset", None)
    config.pop("license", None)
    (folder / "config.json").write_text(json.dumps(config))
    return config


def test_licence_comes_from_the_checkpoint(tmp_path):
    assert checkpoint_license(SHIPPED) == "mit"  # the shipped demo heads name their synthetic corpus
    folder = shutil.copytree(SHIPPED, tmp_path / "ckpt")
    config = _without_corpus(folder)
    assert checkpoint_license(folder) is None  # a config that states nothing
    (folder / "config.json").write_text(json.dumps({**config, "dataset": "ravdess"}))
    assert checkpoint_license(folder) == "cc-by-nc-sa-4.0"
    meta = yaml.safe_load(model_card(folder).split("---\n")[1])
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["datasets"] == ["ravdess"]
    (folder / "LICENSE").write_text("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International\n...")
    (folder / "config.json").write_text(json.dumps(config))
    assert checkpoint_license(folder) == "cc-by-nc-sa-4.0"
    (folder / "config.json").write_text(json.dumps({**config, "license": "cc-by-4.0"}))
    assert checkpoint_license(folder) == "cc-by-4.0"  # the config's own statement comes first


def test_push_dry_run_lists_exactly_the_uploaded_files(tmp_path, capsys, offline_cache):
    folder = shutil.copytree(SHIPPED, tmp_path / "ckpt")
    (folder / "train_state.safetensors").write_bytes(b"not for the Hub")
    (folder / "notes.txt").write_text("local notes")
    (folder / "LICENSE").write_text("MIT License\n\nCopyright ...")
    assert main(["push", str(folder), "--repo-id", "someone/emorank-demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    listed = [line.split("\t")[0].strip() for line in out.splitlines() if line.startswith("  ")]
    assert sorted(listed) == sorted(["heads.safetensors", "config.json", "eval.json", "LICENSE", "README.md"])
    assert "would upload to someone/emorank-demo" in out
    plan = push_to_hub(folder, "someone/emorank-demo", dry_run=True)
    assert plan.files["heads.safetensors"] == (folder / "heads.safetensors").stat().st_size
    assert plan.card_generated and plan.url is None
    assert not (folder / "README.md").exists()  # a dry run writes nothing


def test_push_refuses_without_a_licence_or_with_a_bad_repo_id(tmp_path, capsys):
    folder = shutil.copytree(SHIPPED, tmp_path / "ckpt")
    _without_corpus(folder)
    assert main(["push", str(folder), "--repo-id", "someone/emorank-demo", "--dry-run"]) == 2
    assert "--license" in capsys.readouterr().err
    with pytest.raises(ValueError, match="repo id"):
        push_to_hub(folder, "not a repo id", dry_run=True, license="mit")
    (folder / "heads.safetensors").write_bytes(b"corrupt")
    with pytest.raises(CheckpointError):
        push_to_hub(folder, "someone/emorank-demo", dry_run=True, license="mit")


def test_push_without_a_hub_says_what_to_do_instead_of_a_traceback(tmp_path):
    """No network, offline mode, a refused token: one sentence each on stderr, exit status 2, no traceback."""
    import http.server
    import os
    import socket
    import subprocess
    import sys
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = b'{"error": "Invalid credentials in Authorization header"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST  # noqa: N815

        def log_message(self, *args):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    root = Path(__file__).resolve().parents[2]
    cases = {"cannot be reached": {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{closed}"},
             "HF_HUB_OFFLINE is set": {"HF_HUB_OFFLINE": "1"},
             "refused the upload": {"HF_HUB_OFFLINE": "0",
                                    "HF_ENDPOINT": f"http://127.0.0.1:{refusing.server_address[1]}"}}
    try:
        for says, env in cases.items():
            run = subprocess.run([sys.executable, "-m", "emorank", "push", str(SHIPPED), "--repo-id", "someone/x"],
                                 capture_output=True, text=True, timeout=120, cwd=root,
                                 env={**os.environ, "HF_TOKEN": "hf_not_a_token", "HF_HUB_ETAG_TIMEOUT": "5",
                                      "HF_HUB_DOWNLOAD_TIMEOUT": "5", **env})
            assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-600:]
            assert run.stderr.startswith("error: ") and says in run.stderr and "run the command again" in run.stderr
    finally:
        refusing.shutdown()


def test_model_card_names_the_whisper_layer_pooling_and_weight_wheels(tmp_path):
    from emorank.encoders.whisper import WHISPER_WEIGHTS

    folder = shutil.copytree(SHIPPED, tmp_path / "whisper")
    config = json.loads((folder / "config.json").read_text())
    config["model"].update(audio_encoder="whisper-base", audio_encoder_kwargs={"layer": 3, "pooling": "mean_std"})
    (folder / "config.json").write_text(json.dumps(config))
    body = model_card(folder, license="mit").split("---\n", 2)[2]
    assert "Whisper base encoder, output of block(s) 3 of 6, pooled over the clip's frames with `mean_std`" in body
    for part in WHISPER_WEIGHTS["whisper-base"].parts:
        assert f"`{part.package}=={part.version}`" in body and part.sha256 in body
    egemaps = model_card(SHIPPED, license="mit").split("---\n", 2)[2]
    assert "Whisper" not in egemaps
