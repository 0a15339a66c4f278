"""Check and time the Whisper encoders on RAVDESS: the mapped model transcribes, and what extraction costs.

    nice python bench/whisper_check.py [--ravdess ROOT] [--clips 48] [--json out.json]

(run from the repository root; ROOT is RAVDESS's ``audio_speech_actors_01-24`` folder, default
``~/corpora/speech-emotion-recognition-ravdess-data/audio_speech_actors_01-24``).

1. Transcription: the whole Whisper model (encoder + decoder, mapped from the wheels' CTranslate2 file into
   transformers) decodes greedily RAVDESS clips of both statements ("Kids are talking by the door", "Dogs are
   sitting by the door") from actors across the corpus, with the tokenizer shipped in the wheels; when
   ``ctranslate2`` is installed, its own greedy decoding of the same file must give the same tokens.
2. Cost: CPU seconds (all threads of this one process; ``--threads`` sets torch's) per 100 s of audio for ``encode_files`` with each encoder's
   defaults (clip as it is, the default block), on ``--clips`` clips spread over the corpus, model already loaded;
   extrapolated to the 1440 speech clips from their total duration; the load time (read, sha256, map) apart; and,
   for reference, the same with the clip padded to 30 s (``pad=True``) on a few clips.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emorank.data.audio import load_audio  # noqa: E402
from emorank.encoders.whisper import WHISPER_ENCODERS, WHISPER_WEIGHTS, _feature_extractor, whisper_available  # noqa: E402
from emorank.encoders.ct2 import greedy_tokens, load_whisper, parse_ct2  # noqa: E402

STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
DEFAULT_ROOT = Path.home() / "corpora/speech-emotion-recognition-ravdess-data/audio_speech_actors_01-24"


def normalise(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


def transcription(name: str, clips: list[Path]) -> dict:
    """Greedy transcripts of the mapped model, their accuracy, and agreement with CTranslate2's tokens."""
    import torch

    weights = WHISPER_WEIGHTS[name]
    data = weights.read()
    model, tok = load_whisper(parse_ct2(data)), weights.read_tokenizer()
    folder = weights.tokenizer.locate().parent
    config = json.loads((folder / "config.json").read_text())
    specials = ["<|startoftranscript|>", *(["<|en|>", "<|transcribe|>"] if name == "whisper-base" else []),
                "<|notimestamps|>"]
    prompt, end = [tok.token_to_id(t) for t in specials], tok.token_to_id("<|endoftext|>")
    try:
        import ctranslate2
        files = {"model.bin": io.BytesIO(bytes(data))}
        files.update({p.name: io.BytesIO(p.read_bytes()) for p in folder.iterdir()
                      if p.name == "config.json" or p.name.startswith("vocabulary.")})
        ct = ctranslate2.models.Whisper(name, device="cpu", compute_type="float32", files=files)
    except ImportError:
        ct = None
    rows = []
    for path in clips:
        mel = _feature_extractor(80)([load_audio(path)], sampling_rate=16000, padding="max_length",
                                     return_tensors="np").input_features.astype(np.float32)
        ours = greedy_tokens(model, torch.from_numpy(mel), prompt, end, max_tokens=32,
                             suppress=config["suppress_ids"], suppress_first=config["suppress_ids_begin"])
        same = None
        if ct is not None:
            ref = ct.generate(ctranslate2.StorageView.from_array(mel), [prompt], beam_size=1,
                              max_length=len(prompt) + 32)
            same = ours == ref[0].sequences_ids[0]
        text = tok.decode(ours)
        want = STATEMENTS[path.name.split("-")[4]]
        rows.append({"clip": path.name, "text": text.strip(), "correct": normalise(text) == want,
                     "same_tokens_as_ctranslate2": same})
        print(f"  {name} {path.name}: {text.strip()!r} {'ok' if rows[-1]['correct'] else 'WRONG'}"
              f"{'' if same is None else ', tokens = ctranslate2' if same else ', tokens DIFFER from ctranslate2'}")
    return {"clips": rows, "correct": sum(r["correct"] for r in rows), "n": len(rows),
            "same_tokens_as_ctranslate2": None if ct is None else sum(bool(r["same_tokens_as_ctranslate2"])
                                                                      for r in rows)}


def cost(name: str, clips: list[Path], all_seconds: float, pad_clips: list[Path]) -> dict:
    import soundfile as sf

    enc = WHISPER_ENCODERS[name](device="cpu")
    t0 = time.perf_counter()
    enc.load()
    load_s = time.perf_counter() - t0
    enc.encode_files(clips[:1])  # warm-up (first-call allocations)
    out = {"load_seconds": round(load_s, 2)}
    for label, encoder, paths in (("as_is", enc, clips),
                                  ("padded_30s", WHISPER_ENCODERS[name](device="cpu", pad=True), pad_clips)):
        audio = sum(sf.info(str(p)).duration for p in paths)
        c0, w0 = time.process_time(), time.perf_counter()
        encoder.encode_files(paths)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        out[label] = {"clips": len(paths), "audio_seconds": round(audio, 1),
                      "cpu_s_per_100s": round(100 * cpu / audio, 2), "wall_s_per_100s": round(100 * wall / audio, 2),
                      "ravdess_1440_cpu_minutes": round(cpu / audio * all_seconds / 60, 2),
                      "ravdess_1440_wall_minutes": round(wall / audio * all_seconds / 60, 2)}
        print(f"  {name} {label}: {out[label]}")
    return out


def main() -> int:
    import soundfile as sf
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ravdess", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--clips", type=int, default=48, help="clips timed per encoder (default 48)")
    ap.add_argument("--padded-clips", type=int, default=6, help="clips timed padded to 30 s (default 6)")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own choice, one per core)")
    ap.add_argument("--skip-transcription", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    speech = sorted(args.ravdess.glob("Actor_*/03-01-*.wav"))
    if len(speech) != 1440:
        print(f"expected the 1440 RAVDESS speech clips under {args.ravdess}, found {len(speech)}", file=sys.stderr)
        return 2
    all_seconds = sum(sf.info(str(p)).duration for p in speech)
    asr = [args.ravdess / f"Actor_{a:02d}/03-01-{e:02d}-0{1 if e == 1 else 1 + a % 2}-{s}-01-{a:02d}.wav"
           for a, e in zip((1, 4, 7, 10, 13, 16, 19, 22, 24), (1, 2, 3, 4, 5, 6, 7, 8, 3)) for s in STATEMENTS]
    timed = speech[::len(speech) // args.clips][:args.clips]
    padded = speech[7::len(speech) // args.padded_clips][:args.padded_clips]
    report = {"ravdess_speech_clips": len(speech), "ravdess_speech_seconds": round(all_seconds, 1),
              "torch_threads": torch.get_num_threads(), "encoders": {}}
    for name in WHISPER_ENCODERS:
        missing = whisper_available(name)
        if missing:
            print(missing)
            continue
        result = {}
        if not args.skip_transcription:
            print(f"{name}: transcription of {len(asr)} clips")
            result["transcription"] = transcription(name, asr)
        print(f"{name}: cost")
        result["cost"] = cost(name, timed, all_seconds, padded)
        report["encoders"][name] = result
    print(json.dumps({k: v for k, v in report.items() if k != "encoders"}))
    for name, r in report["encoders"].items():
        if "transcription" in r:
            t = r["transcription"]
            print(f"{name}: {t['correct']}/{t['n']} transcripts correct, {t['same_tokens_as_ctranslate2']} with "
                  "ctranslate2's tokens")
        print(f"{name}: {r['cost']['as_is']['cpu_s_per_100s']} CPU s / 100 s audio "
              f"(padded to 30 s: {r['cost']['padded_30s']['cpu_s_per_100s']}); RAVDESS 1440 clips: "
              f"{r['cost']['as_is']['ravdess_1440_cpu_minutes']} CPU min")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
