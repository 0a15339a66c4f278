"""Checkpoints on the Hugging Face Hub: load one by repo id, push one with a generated model card.

    model = EmotionRankCLAP.from_pretrained("owner/emorank-ravdess")     # or a local checkpoint folder
    push_to_hub("runs/ravdess/checkpoint", "owner/emorank-ravdess", license="cc-by-nc-sa-4.0", dataset="ravdess")

A repo id goes through ``huggingface_hub.snapshot_download`` and so its cache (``HF_HUB_CACHE`` / ``HF_HOME``) and
``HF_HUB_OFFLINE``, both read when the call is made (huggingface_hub itself reads them once, at import). Only the
checkpoint's own files are fetched or uploaded (:data:`CHECKPOINT_FILES`); training state and anything else in
the folder stay local.

The model card (``README.md``) is generated from the checkpoint alone: YAML metadata (library_name, tags, licence,
datasets, and the test metrics of its ``eval.json`` as a model-index), then the system, its encoders and training
configuration, the metrics table, how to load it, what it is not good at, and the citation. A folder that
already has a ``README.md`` keeps it (a card the author wrote wins over ours).
"""
from __future__ import annotations

import os
from pathlib import Path

from emorank.model.checkpoint import (
    CONFIG_FILE,
    HEADS_FILE,
    CheckpointError,
)

EVAL_FILE = "eval.json"
CARD_FILE = "README.md"
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "LICENCE.md", "LICENCE.txt")
CHECKPOINT_FILES = (HEADS_FILE, CONFIG_FILE, EVAL_FILE, CARD_FILE, *LICENSE_FILES)

# Corpora whose licence is known: name -> (display name, licence id on the Hub). Heads trained on a corpus carry
# its licence (DESIGN.md §7.1); RAVDESS is CC BY-NC-SA 4.0, CREMA-D the Open Database License.
CORPUS_LICENSES = {
    "ravdess": ("RAVDESS", "cc-by-nc-sa-4.0"),
    "crema-d": ("CREMA-D", "odbl"),
    "demo": ("emorank synthetic demo corpus (eSpeak NG)", "mit"),
}
# Known licence texts (the first lines of a LICENSE file) -> licence id on the Hub.
LICENSE_TEXTS = {"attribution-noncommercial-sharealike 4.0": "cc-by-nc-sa-4.0", "attribution 4.0": "cc-by-4.0",
                 "mit license": "mit", "apache license": "apache-2.0", "open database license": "odbl"}
TAGS = ["emorank", "emotion-recognition", "speech-emotion-recognition", "clap", "audio-text-retrieval",
        "speaking-style-captions", "valence-arousal"]
CITATION = """@misc{sureshchandra2025emotionrankclap,
  title     = {EmotionRankCLAP: Bridging Natural Language Speaking Styles and Ordinal Speech Emotion via Rank-N-Contrast},
  author    = {Suresh Chandra, Shreeram and Goncalves, Lucas and Lu, Junchen and Busso, Carlos and Sisman, Berrak},
  note      = {arXiv preprint},
  year      = {2025}
}"""
# eval.json path -> (metric type, heading, lower is better)
CARD_METRICS = {
    ("alignment", "mmd"): ("mmd", "MMD (audio vs text embeddings)", True),
    ("alignment", "wasserstein"): ("wasserstein", "Wasserstein distance", True),
    ("ordinality", "aoc"): ("kendall_tau_arousal", "AOC: arousal ordinality (Kendall tau)", False),
    ("ordinality", "voc"): ("kendall_tau_valence", "VOC: valence ordinality (Kendall tau)", False),
    ("retrieval", "a2t_r@1"): ("recall_at_1", "Recall@1 audio→text", False),
    ("retrieval", "a2t_r@10"): ("recall_at_10", "Recall@10 audio→text", False),
    ("retrieval", "t2a_r@10"): ("recall_at_10", "Recall@10 text→audio", False),
    ("va_estimation", "ccc_valence"): ("ccc", "CCC valence (zero-shot V-A estimate)", False),
    ("va_estimation", "ccc_arousal"): ("ccc", "CCC arousal (zero-shot V-A estimate)", False),
    ("zero_shot", "zs_uar"): ("uar", "Zero-shot category UAR", False),
    ("zero_shot", "zs_accuracy"): ("accuracy", "Zero-shot category accuracy", False),
    ("zero_shot", "zs_macro_f1"): ("f1", "Zero-shot category macro-F1", False),
}


class HubCheckpointError(CheckpointError):
    """A checkpoint named by a Hub repo id cannot be had (offline and not cached, no such repo, not emorank)."""


# ------------------------------------------------------------------------------------------------ loading
def resolve_checkpoint(id_or_folder: str | os.PathLike, revision: str | None = None) -> Path:
    """A local checkpoint folder as is; a Hub repo id -> its snapshot folder in the Hugging Face cache."""
    path = Path(id_or_folder).expanduser()
    if path.is_dir():
        return path
    repo_id = str(id_or_folder)
    if not _is_repo_id(repo_id):
        raise CheckpointError(f"checkpoint {repo_id} not found: it is neither a folder (with {HEADS_FILE} and "
                              f"{CONFIG_FILE}) nor a Hugging Face repo id (owner/name)")
    return _download(repo_id, revision)


def _is_repo_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _offline() -> bool:
    """Offline mode as the environment says *now*."""
    return any(os.environ.get(k, "").strip().lower() in {"1", "true", "yes", "on"}
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache as the environment says now (HF_HUB_CACHE, else HF_HOME/hub, else the default)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from emorank import __version__

    cache = hub_cache_dir()
    offline = _offline()
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=offline,
                                        allow_patterns=list(CHECKPOINT_FILES), library_name="emorank",
                                        library_version=__version__))
    except LocalEntryNotFoundError as err:
        if offline:
            raise HubCheckpointError(
                f"checkpoint {repo_id} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE=1 forbids "
                f"downloading it: run once with network access (HF_HUB_OFFLINE unset), or pass a local "
                f"checkpoint folder ({HEADS_FILE} + {CONFIG_FILE}) instead") from err
        raise HubCheckpointError(
            f"checkpoint {repo_id} could not be downloaded (the Hub could not be reached) and is not in the Hugging "
            f"Face cache ({cache}); retry with network access, or pass a local checkpoint folder instead") from err
    except GatedRepoError as err:
        raise HubCheckpointError(f"checkpoint {repo_id} is gated on the Hub: accept its conditions on its page and "
                                 "log in (`hf auth login`), or pass a local checkpoint folder instead") from err
    except RepositoryNotFoundError as err:
        raise HubCheckpointError(f"checkpoint {repo_id}: no such model repo on the Hugging Face Hub (or it is "
                                 "private: log in with `hf auth login`), and no such local folder") from err
    except RevisionNotFoundError as err:
        raise HubCheckpointError(f"checkpoint {repo_id} has no revision {revision!r} on the Hub") from err
    except HfHubHTTPError as err:
        raise HubCheckpointError(f"checkpoint {repo_id} could not be downloaded: {str(err)[:200]}") from err
    if not (folder / HEADS_FILE).is_file() or not (folder / CONFIG_FILE).is_file():
        raise HubCheckpointError(f"Hub repo {repo_id} is not an emorank checkpoint: it has no {HEADS_FILE} and "
                                 f"{CONFIG_FILE}")
    return folder
