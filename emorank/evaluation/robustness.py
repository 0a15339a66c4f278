"""Shift suite: a split's clips re-rendered as users record them, and each checkpoint evaluated on each condition.

    report = robustness(["checkpoints/a", "checkpoints/b"], load_corpus("ravdess", root), split="test")
    print(robustness_table(report))  # Markdown; the report itself is JSON-ready

Conditions (:data:`CONDITIONS`, a plain dict; all offline, numpy/scipy/soundfile only):

* ``clean``: the split as it is, evaluated exactly as :func:`emorank.evaluation.evaluate.evaluate` does (no re-rendering);
* ``telephone``: resampled to 8 kHz, band-passed to 300-3400 Hz (Butterworth, zero phase), back to 16 kHz;
* ``gain-12db`` / ``gain+12db``: level changed by -12 / +12 dB, clipped at full scale as a recorder would;
* ``white-20db`` ... ``pink-10db``: white or pink (1/f) noise at a global SNR over the whole clip (pauses
  included, so the SNR during speech is higher);
* ``mp3`` / ``ogg``: re-encoded with libsndfile (MP3 in average-bitrate mode and Ogg Vorbis, at compression
  levels 0.85 and 0.7: about 21 and 26 kbit/s on RAVDESS speech) and decoded back; skipped with a message where
  the installed libsndfile cannot write the format (MP3 needs libsndfile >= 1.1);
* ``reverb``: convolved with a synthetic room impulse response (direct path + exponentially decaying noise,
  RT60 0.5 s, direct-to-reverberant ratio 0 dB: a talker about the room's critical distance away), then set
  back to the input's RMS so that level stays a separate condition;
* ``cut-2s``: the middle 2 s of each clip (shorter clips are kept whole).

Every rendered clip is 16 kHz mono 16-bit PCM, clipped to full scale; random draws (noise) are seeded from the
clip's path relative to the manifest root, so the output does not depend on where the corpus lives and the two
SNRs of one colour share one noise draw (paired). Clips are written once, atomically (temp file + rename), under
``audio_dir/<condition>/<fingerprint>/<relative path>`` where the fingerprint covers the condition's settings and
the split's files (relative paths and content hashes): a changed file or setting renders a new folder, an
unchanged one is reused. A rendered clip keeps its relative path, so clip ids -- and the captions phrased from
them -- are the clean ones (sources in a lossy container, e.g. ``.mp3``, get ``.wav`` appended). Features of the
rendered clips go through the normal :class:`~emorank.encoders.cache.FeatureCache` (new content, new rows).
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from emorank.data.manifest import Manifest, ManifestError
from emorank.evaluation.evaluate import EvalConfig, evaluate
from emorank.encoders.cache import FeatureCache, file_sha
from emorank.model.core import EmotionRankCLAP

# scipy.signal and emorank.data.audio (which imports it) are imported where used: they cost ~0.7 s, and the command
# line builds its parser (which lists CONDITIONS) on every command.
RENDER_SR = 16000  # every rendered clip; equals emorank.data.audio.TARGET_SR, the rate every encoder reads
RENDER_VERSION = 1  # bump when a degradation's code changes its output: old renders are then not reused
METRICS = {"aoc": ("ordinality", "aoc", "mean"), "voc": ("ordinality", "voc", "mean"),
           "label_r@1": ("retrieval", "a2t_label_r@1")}  # table key -> path into evaluate()'s report
METRIC_TITLES = {"aoc": "AOC", "voc": "VOC", "label_r@1": "label R@1"}
LOSSLESS_SUFFIXES = {".wav", ".flac", ".aiff", ".aif", ".au", ".caf", ".w64", ".rf64"}


# ------------------------------------------------------------------------------------------ degradations (maths)
def telephone_band(wav: np.ndarray, sr: int, rate: int = 8000, low: float = 300.0, high: float = 3400.0,
                   order: int = 4) -> np.ndarray:
    """Narrow-band telephone speech: down to ``rate``, band-pass ``low``-``high`` Hz, back up to ``sr``.

    Butterworth band-pass of order ``2 * order`` applied forward and backward (zero phase: the clip stays aligned
    with the original; the attenuation in dB doubles). Same length as the input."""
    from scipy.signal import butter, sosfiltfilt

    from emorank.data.audio import resample
    narrow = resample(wav, sr, rate).astype(np.float64)  # [T * rate / sr]
    sos = butter(order, [low, high], btype="bandpass", fs=rate, output="sos")
    narrow = sosfiltfilt(sos, narrow)
    return _fit_length(resample(narrow, rate, sr), len(wav))


def apply_gain(wav: np.ndarray, db: float) -> np.ndarray:
    """Level changed by ``db`` decibels, then clipped to full scale [-1, 1] (a recorder's converter)."""
    return np.clip(np.asarray(wav, np.float64) * 10.0 ** (db / 20.0), -1.0, 1.0)


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-variance Gaussian white noise."""
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS pink noise: white noise whose power spectrum is shaped to 1/f (no DC)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))  # [n // 2 + 1]
    freqs = np.fft.rfftfreq(n)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(freqs[1:])  # amplitude 1/sqrt(f) -> power 1/f
    noise = np.fft.irfft(spectrum, n)
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


NOISES = {"white": white_noise, "pink": pink_noise}


def add_noise(wav: np.ndarray, snr_db: float, noise: np.ndarray) -> np.ndarray:
    """``wav`` plus ``noise`` scaled to a signal-to-noise ratio of ``snr_db`` over the whole clip.

    SNR = 10 log10(mean(wav^2) / mean(scaled noise^2)); a silent input is returned unchanged."""
    wav = np.asarray(wav, np.float64)
    p_signal, p_noise = float(np.mean(wav ** 2)), float(np.mean(noise ** 2))
    if p_signal <= 0 or p_noise <= 0:
        return wav.copy()
    return wav + noise * np.sqrt(p_signal / (p_noise * 10.0 ** (snr_db / 10.0)))


def reencode(wav: np.ndarray, sr: int, format: str, subtype: str, compression_level: float | None = None,
             bitrate_mode: str | None = None) -> np.ndarray:
    """Encode with libsndfile in memory (e.g. MP3, OGG Vorbis) and decode back to float ``[T']``.

    Decoding (not the encoded bytes, whose Ogg stream serial number is random) is what the suite keeps, so the
    output is reproducible."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, np.float32), -1.0, 1.0), sr, format=format, subtype=subtype,
             compression_level=compression_level, bitrate_mode=bitrate_mode)
    buf.seek(0)
    out, _ = sf.read(buf, dtype="float64", always_2d=True)  # [T', C]
    return out.mean(axis=1)


def synthetic_rir(sr: int, rt60: float, drr_db: float = 0.0, seed: int = 0) -> np.ndarray:
    """A room impulse response ``[rt60 * sr]``: a unit direct path, then Gaussian noise decaying by 60 dB in
    ``rt60`` seconds, scaled so that direct / reverberant energy is ``drr_db`` dB. Deterministic given ``seed``."""
    n = max(2, round(rt60 * sr))
    t = np.arange(n) / sr
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # -60 dB at rt60
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def add_reverb(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``wav`` convolved with ``rir``, cut to the input's length (the recording stops when the talker does) and
    set back to the input's RMS."""
    from scipy.signal import fftconvolve

    wav = np.asarray(wav, np.float64)
    wet = fftconvolve(wav, rir)[: len(wav)]
    rms_in, rms_out = np.sqrt(np.mean(wav ** 2)), np.sqrt(np.mean(wet ** 2))
    return wet * (rms_in / rms_out) if rms_out > 0 else wet


def cut_middle(wav: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """The middle ``seconds`` of the clip; a clip no longer than that is returned whole."""
    n = round(seconds * sr)
    if len(wav) <= n:
        return np.array(wav, copy=True)
    start = (len(wav) - n) // 2
    return np.array(wav[start:start + n], copy=True)


def _fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    out[: min(n, len(wav))] = wav[:n]
    return out


# ------------------------------------------------------------------------------------------ conditions (registry)
@dataclass(frozen=True)
class Degradation(abc.ABC):
    """One recording condition. ``apply`` maps a 16 kHz float clip to the degraded clip; ``salt`` names the
    random stream of the per-clip seed (conditions sharing a salt share their draws)."""

    name: str
    description: str

    salt = ""

    @abc.abstractmethod
    def apply(self, wav: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
        """The degraded clip (float, at ``sr``), drawing any randomness from ``rng`` only."""

    def unavailable(self) -> str | None:
        """Why this condition cannot run here (e.g. a codec libsndfile lacks), or None."""
        return None

    def spec(self) -> dict:
        """Everything that determines the output, for the render folder's fingerprint."""
        return {"class": type(self).__name__, **asdict(self), "render_version": RENDER_VERSION}


@dataclass(frozen=True)
class Clean(Degradation):
    def apply(self, wav, sr, rng):
        return wav


@dataclass(frozen=True)
class Telephone(Degradation):
    rate: int = 8000
    low: float = 300.0
    high: float = 3400.0

    def apply(self, wav, sr, rng):
        return telephone_band(wav, sr, self.rate, self.low, self.high)


@dataclass(frozen=True)
class Gain(Degradation):
    db: float = 0.0

    def apply(self, wav, sr, rng):
        return apply_gain(wav, self.db)


@dataclass(frozen=True)
class Noise(Degradation):
    colour: str = "white"
    snr_db: float = 20.0

    salt = "noise"

    def apply(self, wav, sr, rng):
        return add_noise(wav, self.snr_db, NOISES[self.colour](len(wav), rng))


@dataclass(frozen=True)
class Codec(Degradation):
    format: str = "MP3"
    subtype: str = "MPEG_LAYER_III"
    compression_level: float | None = None
    bitrate_mode: str | None = None

    def apply(self, wav, sr, rng):
        return reencode(wav, sr, self.format, self.subtype, self.compression_level, self.bitrate_mode)

    def unavailable(self) -> str | None:
        if self.format not in sf.available_formats() or self.subtype not in sf.available_subtypes(self.format):
            return (f"the installed libsndfile {sf.__libsndfile_version__} cannot write {self.format} "
                    f"{self.subtype} (MP3 needs libsndfile >= 1.1)")
        try:
            self.apply(np.zeros(1600), RENDER_SR, np.random.default_rng(0))
        except (sf.LibsndfileError, RuntimeError) as err:
            return f"libsndfile {sf.__libsndfile_version__} failed to encode {self.format}: {err}"
        return None

    def spec(self) -> dict:
        return {**super().spec(), "libsndfile": sf.__libsndfile_version__}  # the codec's output depends on it


@dataclass(frozen=True)
class Reverb(Degradation):
    rt60: float = 0.5
    drr_db: float = 0.0
    rir_seed: int = 0

    def apply(self, wav, sr, rng):
        return add_reverb(wav, synthetic_rir(sr, self.rt60, self.drr_db, self.rir_seed))


@dataclass(frozen=True)
class Cut(Degradation):
    seconds: float = 2.0

    def apply(self, wav, sr, rng):
        return cut_middle(wav, sr, self.seconds)


CONDITIONS: dict[str, Degradation] = {c.name: c for c in (
    Clean("clean", "as recorded (the evaluation's own numbers)"),
    Telephone("telephone", "8 kHz telephone band: 300-3400 Hz band-pass at 8 kHz, back to 16 kHz"),
    Gain("gain-12db", "level -12 dB", db=-12.0),
    Gain("gain+12db", "level +12 dB, clipped at full scale", db=12.0),
    Noise("white-20db", "white noise at 20 dB SNR", colour="white", snr_db=20.0),
    Noise("white-10db", "white noise at 10 dB SNR", colour="white", snr_db=10.0),
    Noise("pink-20db", "pink noise at 20 dB SNR", colour="pink", snr_db=20.0),
    Noise("pink-10db", "pink noise at 10 dB SNR", colour="pink", snr_db=10.0),
    Codec("mp3", "MP3, average bitrate at compression level 0.85 (about 21 kbit/s on RAVDESS speech), decoded",
          format="MP3", subtype="MPEG_LAYER_III", compression_level=0.85, bitrate_mode="AVERAGE"),
    Codec("ogg", "Ogg Vorbis at compression level 0.7 (about 26 kbit/s on RAVDESS speech), decoded",
          format="OGG", subtype="VORBIS", compression_level=0.7),
    Reverb("reverb", "room reverb: synthetic RIR, RT60 0.5 s, direct-to-reverberant 0 dB", rt60=0.5, drr_db=0.0),
    Cut("cut-2s", "the middle 2 s of each clip", seconds=2.0),
)}
"""Condition name -> :class:`Degradation`, in table order."""


def get_conditions(names: Sequence[str] | str | None = None) -> list[Degradation]:
    """The conditions named (``None`` or ``"all"``: every one), ``clean`` always first; unknown names raise."""
    if names is None or names == "all" or list(names) == ["all"]:
        return list(CONDITIONS.values())
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {', '.join(map(repr, unknown))}; valid: {', '.join(CONDITIONS)}")
    return [CONDITIONS["clean"]] + [CONDITIONS[n] for n in dict.fromkeys(names) if n != "clean"]


def clip_seed(rel_path: str, salt: str) -> int:
    """A 64-bit seed from a clip's path relative to its corpus root (never the absolute path) and a stream name."""
    return int.from_bytes(hashlib.sha256(f"{salt}\0{rel_path}".encode()).digest()[:8], "little")


def degrade(wav: np.ndarray, sr: int, condition: Degradation, rel_path: str) -> np.ndarray:
    """One clip under ``condition``: float32 ``[T']`` clipped to full scale."""
    rng = np.random.default_rng(clip_seed(rel_path, condition.salt or condition.name))
    out = condition.apply(np.asarray(wav, np.float64), sr, rng)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------------------------------ rendering (plumbing)
@dataclass
class Rendered:
    """A condition's clips on disk: the manifest to evaluate and the clips that could not be rendered."""

    condition: Degradation
    manifest: Manifest | None  # None: the condition is unavailable here
    skipped: list[dict]
    unavailable: str | None = None
    seconds: float = 0.0


def _target_name(rel: str) -> str:
    """Where a clip goes inside its condition folder: its relative path (so ids and captions stay the clean ones),
    made safe (no ``..``), with ``.wav`` appended to sources in a lossy or unwritable container."""
    parts = ["_up_" if p == ".." else p for p in rel.split("/") if p not in ("", ".")]
    name = "/".join(parts)
    return name if Path(name).suffix.lower() in LOSSLESS_SUFFIXES else name + ".wav"


def _render_folder(audio_dir: Path, condition: Degradation, ids: Sequence[str], shas: Sequence[str]) -> Path:
    key = json.dumps({"spec": condition.spec(), "clips": sorted(zip(ids, shas))}, sort_keys=True)
    return audio_dir / condition.name / hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def render(part: Manifest, conditions: Sequence[Degradation], audio_dir: str | os.PathLike,
           progress: bool = True) -> dict[str, Rendered]:
    """Write every missing degraded clip of ``part`` for each condition (clean is not rendered: it is ``part``).

    Each source is read once (16 kHz mono) for all conditions; finished clips are kept, so an interrupted run
    (Ctrl-C) resumes where it stopped and never leaves a partial file."""
    from emorank.data.audio import AudioError, load_audio, write_audio

    audio_dir = Path(audio_dir).expanduser().absolute()
    ids = part.ids
    shas = [file_sha(p) if os.path.isfile(p) else "" for p in part.path]
    out: dict[str, Rendered] = {}
    todo: list[tuple[Degradation, Path]] = []
    for c in conditions:
        if isinstance(c, Clean):
            out[c.name] = Rendered(c, part, [])
        elif (reason := c.unavailable()) is not None:
            out[c.name] = Rendered(c, None, [], unavailable=reason)
        else:
            todo.append((c, _render_folder(audio_dir, c, ids, shas)))
    failed: dict[int, str] = {}
    seconds = {c.name: 0.0 for c, _ in todo}
    for i in _progress_rows(len(part), progress, f"render {len(todo)} conditions"):
        targets = [(c, folder / _target_name(ids[i])) for c, folder in todo]
        targets = [(c, t) for c, t in targets if not t.exists()]
        if not targets:
            continue
        try:
            wav = load_audio(part.path[i], RENDER_SR)
        except AudioError as err:
            failed[i] = err.reason
            continue
        for c, target in targets:
            start = time.perf_counter()
            write_audio(target, degrade(wav, RENDER_SR, c, ids[i]), RENDER_SR, subtype="PCM_16")
            seconds[c.name] += time.perf_counter() - start
    for c, folder in todo:
        out[c.name] = _rendered_manifest(part, c, folder, failed, seconds[c.name])
    return out


def _rendered_manifest(part: Manifest, c: Degradation, folder: Path, failed: dict[int, str],
                       seconds: float) -> Rendered:
    ids = part.ids
    paths = [folder / _target_name(r) for r in ids]
    keep = [i for i, p in enumerate(paths) if i not in failed and p.exists()]
    skipped = [{"path": ids[i], "reason": failed.get(i, "not rendered")} for i in range(len(part)) if i not in keep]
    sub = part.subset(np.asarray(keep, dtype=np.int64))
    manifest = dataclasses.replace(sub, path=[str(paths[i]) for i in keep], root=str(folder))
    return Rendered(c, manifest, skipped, seconds=seconds)


def _progress_rows(n: int, progress: bool, desc: str):
    if not progress:
        return range(n)
    from tqdm.auto import tqdm
    return tqdm(range(n), desc=desc, unit="clip")


# ------------------------------------------------------------------------------------------ evaluation
def metric_values(report: dict) -> dict[str, float]:
    """The suite's headline numbers from one :func:`~emorank.evaluation.evaluate.evaluate` report."""
    out = {}
    for key, path in METRICS.items():
        node = report
        for part in path:
            node = node[part]
        out[key] = float(node)
    return out


def checkpoint_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Column labels: each checkpoint folder's name, or its whole path where two names collide."""
    names = [Path(p).name or str(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def robustness(checkpoints: Sequence[str | os.PathLike], manifest: Manifest, split: str = "test",
               conditions: Sequence[str] | str | None = None, audio_dir: str | os.PathLike | None = None,
               cache: FeatureCache | None = None, config: EvalConfig | None = None, workers: int | None = None,
               progress: bool = True) -> dict:
    """Evaluate each checkpoint on each condition of ``split``; returns the JSON-ready report.

    Arguments are checked before anything is rendered: unknown condition names, a missing checkpoint and a split
    without clips raise ``ValueError`` (``CheckpointError``/``ManifestError``) naming the problem."""
    chosen = get_conditions(conditions)
    models = [_load_checkpoint(c) for c in checkpoints]
    if not models:
        raise ValueError("name at least one checkpoint")
    part = _split_part(manifest, split)
    config = config or EvalConfig()
    cache = cache or FeatureCache()
    audio_dir = Path(audio_dir) if audio_dir is not None else _default_audio_dir(cache)
    start = time.perf_counter()
    rendered = render(part, chosen, audio_dir, progress)
    render_s = time.perf_counter() - start
    labels = checkpoint_labels(checkpoints)
    results = [_evaluate_checkpoint(m, rendered, split, cache, config, workers, progress) for m in models]
    return {"format": "emorank-robustness", "version": 1, "split": split, "clips": len(part),
            "protocol": asdict(config), "metrics": list(METRICS), "render_seconds": render_s,
            "conditions": [_condition_entry(r) for r in rendered.values()],
            "checkpoints": [{"label": label, "path": str(path), "system": m.extra.get("system", {}).get("name"),
                             "audio_encoder": m.config.audio_encoder, **res}
                            for label, path, m, res in zip(labels, checkpoints, models, results)]}


def _load_checkpoint(path) -> EmotionRankCLAP:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected a folder with config.json and "
                                "heads.safetensors)")
    return EmotionRankCLAP.from_checkpoint(path)


def _split_part(manifest: Manifest, split: str) -> Manifest:
    part = manifest.split_of(split)
    if len(part) == 0:
        counts = ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(manifest.split_counts().items()))
        raise ManifestError(f"the manifest has no {split!r} clips (splits present: {counts or 'none'}); give a "
                            "manifest with a split column, or choose another --split")
    return part


def _default_audio_dir(cache: FeatureCache) -> Path:
    """Rendered clips live beside the feature cache file: ``<cache folder>/robustness``."""
    return Path(cache.path).absolute().parent / "robustness"


def _condition_entry(r: Rendered) -> dict:
    return {"name": r.condition.name, "description": r.condition.description, "spec": r.condition.spec(),
            "clips": 0 if r.manifest is None else len(r.manifest), "skipped": r.skipped,
            "unavailable": r.unavailable, "render_seconds": r.seconds}


def _evaluate_checkpoint(model: EmotionRankCLAP, rendered: dict[str, Rendered], split: str, cache: FeatureCache,
                         config: EvalConfig, workers: int | None, progress: bool) -> dict:
    """{"results": {condition: metrics + delta to clean + seconds}, "reports": {condition: evaluate()'s report}}."""
    results, reports = {}, {}
    for name, r in rendered.items():
        if r.manifest is None:
            results[name] = {"unavailable": r.unavailable}
            continue
        start = time.perf_counter()
        if workers is not None:  # fill the cache with the caller's process count; evaluate() then reads it
            cache.audio_features(r.manifest.path, model.audio_encoder, workers=workers, progress=progress)
        reports[name] = evaluate(model, r.manifest, split, config, cache, progress)
        results[name] = {**metric_values(reports[name]), "seconds": time.perf_counter() - start}
    clean = results.get("clean", {})
    for res in results.values():
        if "unavailable" not in res and clean:
            res["delta"] = {k: res[k] - clean[k] for k in METRICS}
    return {"results": results, "reports": reports}


# ------------------------------------------------------------------------------------------ table
def robustness_table(report: dict, digits: int = 3) -> str:
    """Markdown: rows = conditions, columns = checkpoint x metric; each shifted cell also shows the change from
    that checkpoint's clean score, e.g. ``0.512 (-0.069)``. A legend lists what each condition does."""
    cks = report["checkpoints"]
    head = ["condition"] + [f"{c['label']} {METRIC_TITLES[k]}" for c in cks for k in report["metrics"]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cond in report["conditions"]:
        cells = [cond["name"]]
        for c in cks:
            res = c["results"][cond["name"]]
            cells += [_cell(res, k, digits, cond["name"] == "clean") for k in report["metrics"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Split {report['split']!r}, {report['clips']} clips; AOC / VOC: Kendall tau of the ordinality "
                 "test; label R@1: audio -> text, label level. In brackets: change from the same checkpoint's "
                 "clean score.")
    lines.append("")
    for cond in report["conditions"]:
        note = f" -- skipped: {cond['unavailable']}" if cond["unavailable"] else ""
        lost = f" ({len(cond['skipped'])} clips could not be rendered)" if cond["skipped"] else ""
        lines.append(f"- `{cond['name']}`: {cond['description']}{lost}{note}")
    return "\n".join(lines) + "\n"


def _cell(res: dict, key: str, digits: int, clean: bool) -> str:
    if "unavailable" in res:
        return "skipped"
    value = f"{res[key]:.{digits}f}"
    delta = res.get("delta", {}).get(key)
    return value if clean or delta is None else f"{value} ({delta:+.{digits}f})"


def write_report(report: dict, out_dir: str | os.PathLike, command: str = "") -> tuple[Path, Path]:
    """``robustness.json`` (the whole report) and ``robustness.md`` (the table, plus the command that made it)
    in ``out_dir``, each written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = robustness_table(report) + (f"\nCommand: `{command}`\n" if command else "")
    paths = out / "robustness.json", out / "robustness.md"
    for path, text in zip(paths, (json.dumps({**report, "command": command}, indent=1), md)):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return paths
