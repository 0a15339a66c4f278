"""The SYNTHETIC demo corpus: emotional-ish speech rendered by eSpeak NG, with noisy valence/arousal labels.

THIS CORPUS IS SYNTHETIC. It is not recorded human emotional speech and says nothing about how any system performs
on real data. It exists so that the library, the app, the tests and the benchmarks run anywhere, offline, in
seconds, with data whose structure resembles a dimensional speech-emotion corpus (MSP-Podcast-like columns,
speakers disjoint between splits, labels on the 1..7 scale). Real corpora plug in through :mod:`emorank.data.corpora`.

How a clip is made (every choice below is *our interpretation*; all numbers live in :class:`DemoCorpusConfig` and
:class:`ProsodyMapping`):

1. **Category and target.** A category is drawn (neutral, calm, happy, sad, angry, fear, disgust, surprise,
   boredom) with its valence-arousal prototype from the NRC VAD lexicon noun norms (REFERENCE.md section 7,
   mapped to 1..7 as ``1 + 6x``). An intensity ``s ~ U(0.5, 1)`` moves the point away from the *neutral* prototype
   (``neutral + s * (prototype - neutral)``; neutral itself has no intensity), then an isotropic spread
   (sd 0.45) makes the target continuous. Targets are clipped to [1, 7].
2. **Rendering follows the target.** Speaking rate, pitch level, pitch range, pauses between words and the voice
   (the speaker's eSpeak variant and accent) are set in eSpeak; loudness (peak level), spectral tilt (first-order
   filter), harshness (soft saturation), tremolo and breathiness (envelope-shaped high-passed noise) are applied
   in numpy/scipy. Each cue is a function of the target (valence, arousal) scaled by the speaker's
   expressiveness, plus a per-speaker offset and per-clip jitter. Arousal drives more cues, and more strongly,
   than valence, as in real speech.
3. **Written labels are the target plus rater noise** (sd 0.6, clipped to [1, 7]), so labels are noisy functions
   of the audio, as with averaged human ratings. Dominance is not rendered and is left empty (unknown).
4. **Text is emotionally neutral** and drawn independently of the label, so the words never give it away.

Splits are speaker-disjoint (12 speakers: 8 train, 2 dev, 2 test, one man and one woman in each held-out split);
clips go to splits in a fixed 70/15/15 proportion. The build is deterministic: the same ``seed`` gives
byte-identical audio and tables whatever the number of workers (clips are synthesised in fixed groups of
consecutive indices, each group from eSpeak's pristine state, see :mod:`emorank.espeak`, and every random draw
comes from a per-clip seed), and a corpus of ``n`` clips is the first ``n`` clips of any larger one with the same
seed.

Output folder::

    DIR/audio/<speaker>_<index>.wav   16 kHz mono PCM_16
    DIR/manifest.csv                  path,valence,arousal,dominance,emotion,speaker,gender,split,caption
    DIR/render.csv                    per-clip targets and rendering parameters (for analysis and debugging)
    DIR/corpus.json                   generation parameters; "synthetic": true
"""
import csv
import functools
import json
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile as sf
from scipy.signal import butter, firwin, resample_poly, sosfilt

from emorank.data.audio import TARGET_SR
from emorank.data.espeak import Espeak, EspeakError
from emorank.data.synthetic_plan import (
    CORPUS_VERSION,
    MANIFEST_COLUMNS,
    NRC_WORD,
    SPLITS,
    SYNTHETIC_NOTICE,
    ClipPlan,
    CorpusError,
    CorpusExistsError,
    DemoCorpusConfig,
    EffectParams,
    assign_speaker_splits,
    category_prototypes,
    plan_demo_corpus,
)

# ---------------------------------------------------------------------------------------------------- rendering

def apply_harshness(x: np.ndarray, drive: float) -> np.ndarray:
    """Soft saturation ``tanh(drive * x / peak) / tanh(drive)``: adds harmonics (a rough, pressed voice)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if drive < 1e-3 or peak == 0.0:
        return x
    return np.tanh(drive * x / peak) / math.tanh(drive) * peak


def apply_spectral_tilt(x: np.ndarray, coefficient: float) -> np.ndarray:
    """First-order filter ``y[n] = x[n] - c x[n-1]``: c > 0 brightens (vocal effort), c < 0 darkens."""
    y = x.copy()
    y[1:] -= coefficient * x[:-1]
    return y


def apply_tremolo(x: np.ndarray, sr: int, depth: float, rate_hz: float, phase: float) -> np.ndarray:
    """Amplitude modulation ``1 - depth * (1 + sin(2 pi f t + phase)) / 2`` (a shaky voice)."""
    t = np.arange(x.size) / sr
    return x * (1.0 - depth * 0.5 * (1.0 + np.sin(2 * np.pi * rate_hz * t + phase)))


@functools.lru_cache(maxsize=8)
def _breath_highpass(sr: int) -> np.ndarray:
    return butter(2, 1500.0, btype="highpass", fs=sr, output="sos")


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average [T] (cumulative sums, O(T)); the edges average over the available samples."""
    csum = np.concatenate([[0.0], np.cumsum(x)])
    start = np.arange(x.size) - width // 2
    lo, hi = np.clip(start, 0, x.size), np.clip(start + width, 0, x.size)
    return (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)


def add_breath_noise(x: np.ndarray, sr: int, level: float, rng: np.random.Generator) -> np.ndarray:
    """Add high-passed (> 1.5 kHz) noise shaped by the 10 ms speech envelope, at ``level`` x the envelope."""
    envelope = moving_average(np.abs(x), max(1, int(0.010 * sr)))
    noise = sosfilt(_breath_highpass(sr), rng.standard_normal(x.size))
    noise /= max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    return x + level * envelope * noise


@functools.lru_cache(maxsize=8)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR that ``resample_poly`` designs by default (Kaiser, beta 5), designed once."""
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling by the reduced rational factor (22050 -> 16000 is up 320, down 441)."""
    if sr_in == sr_out:
        return x
    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    return resample_poly(x, up, down, window=_resampling_filter(up, down))


def finish_level(x: np.ndarray, sr: int, effects: EffectParams, rng: np.random.Generator) -> np.ndarray:
    """Pad with silence, set the peak to ``effects.peak_dbfs`` and add room tone; never reaches full scale."""
    x = np.concatenate([np.zeros(int(effects.lead_s * sr)), x, np.zeros(int(effects.tail_s * sr))])
    x = x * (10 ** (effects.peak_dbfs / 20) / max(float(np.max(np.abs(x))), 1e-12))
    return x + 10 ** (effects.floor_dbfs / 20) * rng.standard_normal(x.size)


def post_process(raw: np.ndarray, sr: int, effects: EffectParams, sample_rate: int = TARGET_SR) -> np.ndarray:
    """eSpeak int16 samples [T0] at ``sr`` -> finished float64 clip [T] at ``sample_rate``, peak below 0 dBFS."""
    rng = np.random.default_rng(effects.noise_seed)
    x = raw.astype(np.float64) / 32768.0
    x = apply_harshness(x, effects.harshness)
    x = apply_spectral_tilt(x, effects.tilt)
    x = apply_tremolo(x, sr, effects.tremolo_depth, effects.tremolo_hz, effects.tremolo_phase)
    x = add_breath_noise(x, sr, effects.breath, rng)
    return finish_level(resample(x, sr, sample_rate), sample_rate, effects, rng)


def render_clips(plans: Sequence[ClipPlan], engine: Espeak, sample_rate: int = TARGET_SR) -> list[np.ndarray]:
    """Render planned clips (synthesised in order in one pristine eSpeak child): float64 mono [T_i] each."""
    raws = engine.synthesize_many([(plan.sentence, plan.speech) for plan in plans])       # int16 [T0_i]
    out = []
    for plan, raw in zip(plans, raws):
        if raw.size == 0 or not np.any(raw):
            raise EspeakError(f"eSpeak produced no audio for clip {plan.path} ({plan.sentence!r}, {plan.speech})")
        out.append(post_process(raw, engine.sample_rate, plan.effects, sample_rate))
    return out


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 by rounding (values outside are clipped, which the renderer never produces)."""
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


@functools.lru_cache(maxsize=1)
def _worker_engine() -> Espeak:
    """One eSpeak per worker process, initialised on first use."""
    return Espeak()


def _render_task(task: tuple[list[ClipPlan], str, int]) -> list[tuple[int, float]]:
    """Worker entry point: render a group of clips, write them as 16-bit WAV, return (index, seconds) pairs."""
    plans, root, sample_rate = task
    out = []
    for plan, wav in zip(plans, render_clips(plans, _worker_engine(), sample_rate)):
        samples = to_pcm16(wav)
        sf.write(os.path.join(root, plan.path), samples, sample_rate, subtype="PCM_16", format="WAV")
        out.append((plan.index, samples.size / sample_rate))
    return out


# ------------------------------------------------------------------------------------------------------ writing

def _progress_reporter(progress: bool | Callable[[int, int], None] | None,
                       total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A (update(done), close()) pair for tqdm, a user callable(done, total), or nothing."""
    if callable(progress):
        return (lambda done: progress(done, total)), (lambda: None)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc="demo corpus", unit="clip")
        return (lambda done: bar.update(done - bar.n)), bar.close
    return (lambda done: None), (lambda: None)


def _default_workers(n: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8, math.ceil(n / 50)))


def _executor(workers: int) -> ProcessPoolExecutor:
    """Worker processes for rendering.

    Where ``fork`` exists: a 'forkserver' pool (workers fork from a clean server that imported this module once, so
    later builds in the same process start at once and the caller's threads never reach a worker; asking the
    server to preload this module is a process-wide multiprocessing setting). Elsewhere (Windows) eSpeak cannot be
    isolated per call, so each group of clips gets a fresh spawned process (slower, equally deterministic)."""
    if hasattr(os, "fork") and "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return ProcessPoolExecutor(max_workers=workers, mp_context=context)
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               max_tasks_per_child=1)


def _render_all(plans: list[ClipPlan], root: Path, workers: int, config: DemoCorpusConfig,
                progress: bool | Callable[[int, int], None] | None) -> dict[int, float]:
    """Render every clip in a pool of worker processes (each owns one eSpeak); returns index -> duration.

    Clips go out in fixed groups of ``config.clips_per_fork`` consecutive indices, each synthesised in one
    pristine eSpeak child, so the audio does not depend on the number of workers or on ``n``. On any exception
    (Ctrl-C included) pending groups are cancelled and running ones are awaited, so no worker writes afterwards."""
    size = config.clips_per_fork
    tasks = [(plans[i:i + size], str(root), config.sample_rate) for i in range(0, len(plans), size)]
    update, close = _progress_reporter(progress, len(plans))
    durations: dict[int, float] = {}
    executor = _executor(workers)
    try:
        for future in as_completed([executor.submit(_render_task, task) for task in tasks]):
            durations.update(future.result())
            update(len(durations))
    except BrokenProcessPool as exc:
        raise CorpusError("the corpus worker processes died; if build_demo_corpus is called from a script, put "
                          "the call under `if __name__ == \"__main__\":` (multiprocessing re-imports the main "
                          "module in each worker)") from exc
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        close()
    return durations


def _write_csv(path: Path, header: Sequence[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_manifest(path: Path, plans: list[ClipPlan]) -> None:
    """The generic CSV manifest (relative paths, dominance and caption empty)."""
    rows = [[p.path, f"{p.valence:.3f}", f"{p.arousal:.3f}", "", p.emotion, p.speaker, p.gender, p.split, ""]
            for p in plans]
    _write_csv(path, MANIFEST_COLUMNS, rows)


def write_render_table(path: Path, plans: list[ClipPlan], durations: dict[int, float]) -> None:
    """Per-clip targets and rendering parameters (not needed for training; for analysis)."""
    header = ["path", "speaker", "split", "emotion", "intensity", "target_valence", "target_arousal", "valence",
              "arousal", "sentence", "voice", "rate_wpm", "pitch", "pitch_range", "word_gap", "peak_dbfs", "tilt",
              "tremolo_depth", "tremolo_hz", "breath", "harshness", "duration_s"]
    rows = []
    for p in plans:
        s, fx = p.speech, p.effects
        rows.append([p.path, p.speaker, p.split, p.emotion, f"{p.intensity:.3f}", f"{p.target_valence:.3f}",
                     f"{p.target_arousal:.3f}", f"{p.valence:.3f}", f"{p.arousal:.3f}", p.sentence, s.voice, s.rate,
                     s.pitch, s.pitch_range, s.word_gap, f"{fx.peak_dbfs:.2f}", f"{fx.tilt:.3f}",
                     f"{fx.tremolo_depth:.3f}", f"{fx.tremolo_hz:.2f}", f"{fx.breath:.3f}", f"{fx.harshness:.3f}",
                     f"{durations[p.index]:.4f}"])
    _write_csv(path, header, rows)


def describe_corpus(n: int, seed: int, config: DemoCorpusConfig, plans: list[ClipPlan]) -> dict:
    """The content of ``corpus.json`` (no timestamps, so it is reproducible too)."""
    from emorank import __version__
    try:
        espeak_version = metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        espeak_version = "unknown"
    split_of = assign_speaker_splits(config.speakers, seed, config.split_fractions)
    return {
        "name": "emorank-demo", "synthetic": True, "notice": SYNTHETIC_NOTICE, "version": CORPUS_VERSION,
        "generator": "emorank.data.synthetic.build_demo_corpus", "emorank_version": __version__,
        "espeakng_loader_version": espeak_version, "seed": seed, "n": n, "sample_rate": config.sample_rate,
        "label_scale": [1, 7], "labels": "target (valence, arousal) + N(0, rater_sd) rater noise, clipped to [1, 7]; "
                                         "dominance not rendered, left empty",
        "clips_per_split": {s: sum(p.split == s for p in plans) for s in SPLITS},
        "speakers": [{**asdict(s), "split": split_of[s.id]} for s in config.speakers],
        "category_prototypes": {c: list(va) for c, va in category_prototypes().items() if c in config.categories},
        "nrc_vad_words": {c: NRC_WORD.get(c, c) for c in config.categories},
        "config": asdict(config),
    }


def _is_demo_corpus(folder: Path) -> bool:
    try:
        info = json.loads((folder / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator") == "emorank.data.synthetic.build_demo_corpus"


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder unless ``overwrite`` and it holds an earlier demo corpus."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CorpusExistsError(f"output path {out_dir} exists and is not a folder")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise CorpusExistsError(f"output folder {out_dir} exists and is not empty; refusing to overwrite it "
                                "(pass overwrite=True to replace an earlier demo corpus, or choose another folder)")
    if not _is_demo_corpus(out_dir):
        raise CorpusExistsError(f"output folder {out_dir} is not empty and does not hold an emorank demo corpus "
                                "(no corpus.json from build_demo_corpus); refusing to delete it even with "
                                "overwrite=True")


def _publish(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Move the finished corpus into place by renames, so ``out_dir`` is never half-written."""
    _check_destination(out_dir, overwrite)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, trash / "corpus")
        os.replace(staging, out_dir)
        shutil.rmtree(trash, ignore_errors=True)
        return
    if out_dir.is_dir():
        out_dir.rmdir()
    os.replace(staging, out_dir)


def _check_arguments(n: int, seed: int, workers: int | None) -> None:
    for name, value, lo in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise CorpusError(f"{name} must be an integer >= {lo}, got {value!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                or workers < 1):
        raise CorpusError(f"workers must be None (automatic) or an integer >= 1, got {workers!r}")


def build_demo_corpus(out_dir: str | os.PathLike, n: int = 1000, seed: int = 0, workers: int | None = None,
                      progress: bool | Callable[[int, int], None] | None = True, *, overwrite: bool = False,
                      config: DemoCorpusConfig | None = None) -> Path:
    """Generate the SYNTHETIC demo corpus into ``out_dir``; returns the path of ``out_dir/manifest.csv``.

    Args:
        out_dir: destination folder; must not exist or be empty (see ``overwrite``).
        n: number of clips (about 2-3.5 s each).
        seed: the corpus is a deterministic function of (n, seed, config): byte-identical audio and tables.
        workers: worker processes (each initialises eSpeak once). ``None`` = one per CPU, at most 8 and one per
            50 clips. The output does not depend on it.
        progress: ``True`` for a tqdm bar, a callable ``(done, total)``, or ``False``/``None`` for silence.
        overwrite: replace ``out_dir`` if it holds an earlier demo corpus (a folder with anything else is never
            deleted).
        config: sampling, labelling and prosody parameters (:class:`DemoCorpusConfig`).

    The corpus is built in a hidden folder beside ``out_dir`` and renamed into place at the end, so an interrupted
    run never leaves a half corpus that looks complete (a killed run may leave a hidden ``.NAME.partial-*``
    folder). Workers are separate processes, so a script that calls this must do so under
    ``if __name__ == "__main__":``.
    """
    _check_arguments(n, seed, workers)
    config = DemoCorpusConfig() if config is None else config
    out_dir = Path(out_dir).expanduser().resolve()
    _check_destination(out_dir, overwrite)
    plans = plan_demo_corpus(int(n), int(seed), config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        (staging / "audio").mkdir()
        durations = _render_all(plans, staging, workers or _default_workers(n), config, progress)
        write_manifest(staging / "manifest.csv", plans)
        write_render_table(staging / "render.csv", plans, durations)
        description = describe_corpus(int(n), int(seed), config, plans)
        (staging / "corpus.json").write_text(json.dumps(description, indent=2, sort_keys=True) + "\n",
                                             encoding="utf-8")
        _publish(staging, out_dir, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no-op after a successful publish (staging was renamed)
    return out_dir / "manifest.csv"
