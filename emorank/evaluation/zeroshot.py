"""Zero-shot emotion-category classification: the evaluation ParaCLAP, SmoothCLAP and ParaSpeechCLAP report.

Each category is described by several prompts ("the person is feeling angry", "The person is speaking in an angry
voice", ...); their text embeddings are averaged (and renormalised) into one class embedding, and a clip is
assigned the class with the highest cosine to its audio embedding. Reported: UAR (unweighted average recall, the
field's headline for imbalanced emotion corpora), accuracy, macro-F1 and the confusion matrix.

    report = zero_shot(model, manifest.split_of("test"), audio_emb, cache)
    report["zs_uar"], report["confusion"]

Classes are the categories present in the split (``""`` and ``"other"`` are not emotions and are left out, with
their clips). Our interpretation: the prompt wording (six templates, English adjectives of emorank's normalised
category names); a category without an adjective here is described by its own name.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

MIN_CLASSES = 2  # fewer categories present: no zero-shot classification
EXCLUDED = ("", "other")
# normalised category name (emorank.data.manifest.normalise_emotion) -> adjective used in the prompts
ADJECTIVES = {"neutral": "neutral", "calm": "calm", "happy": "happy", "sad": "sad", "angry": "angry",
              "fear": "fearful", "disgust": "disgusted", "surprise": "surprised", "contempt": "contemptuous",
              "boredom": "bored", "frustration": "frustrated", "excited": "excited"}
TEMPLATES = ("the person is feeling {adj}",
             "The person is speaking in {a_adj} voice.",
             "The person sounds {adj}.",
             "A {adj} person is speaking.",
             "The speaker's tone of voice is {adj}.",
             "This is the voice of someone who is {adj}.")


# ------------------------------------------------------------------------------------------------ prompts
def zero_shot_classes(emotions: Sequence[str] | None) -> list[str]:
    """The categories present in a split, sorted; empty when the split has no categories."""
    return sorted({e for e in (emotions or ()) if e not in EXCLUDED})


def class_prompts(name: str) -> list[str]:
    """The prompts describing one category."""
    adj = ADJECTIVES.get(name, name)
    article = "an" if adj[:1].lower() in "aeiou" else "a"
    return [t.format(adj=adj, a_adj=f"{article} {adj}") for t in TEMPLATES]


def class_embeddings(model, classes: Sequence[str], cache=None) -> np.ndarray:
    """[C, D] L2-normalised mean prompt embedding per class."""
    from emorank.search.retrieval import text_embeddings

    prompts = [class_prompts(c) for c in classes]
    emb = text_embeddings(model, [p for ps in prompts for p in ps], cache)  # [C * T, D]
    emb = emb.reshape(len(classes), len(TEMPLATES), -1).mean(axis=1)  # [C, D]
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def predict(audio_emb: np.ndarray, class_emb: np.ndarray) -> np.ndarray:
    """[N] index of the class with the highest cosine (both inputs L2-normalised)."""
    return np.argmax(audio_emb @ class_emb.T, axis=1)  # [N, C] -> [N]


# ------------------------------------------------------------------------------------------------ metrics
def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (a class never predicted has precision 0, not NaN)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    return _ratio(np.diag(confusion), confusion.sum(axis=1))


def uar(confusion: np.ndarray) -> float:
    """Unweighted average recall: the mean recall over the classes that occur (rows with at least one clip)."""
    present = confusion.sum(axis=1) > 0
    return float(per_class_recall(confusion)[present].mean()) if present.any() else float("nan")


def accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes that occur; F1 = 2PR / (P + R), 0 when P + R = 0."""
    present = confusion.sum(axis=1) > 0
    if not present.any():
        return float("nan")
    precision = _ratio(np.diag(confusion), confusion.sum(axis=0))
    recall = per_class_recall(confusion)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return float(f1[present].mean())


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> dict:
    """The JSON-ready metrics of a prediction: zs_uar, zs_accuracy, zs_macro_f1, confusion, per-class recall."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    return {"zs_uar": uar(cm), "zs_accuracy": accuracy(cm), "zs_macro_f1": macro_f1(cm),
            "chance_uar": 1.0 / len(classes), "classes": list(classes),
            "support": [int(n) for n in cm.sum(axis=1)], "confusion": cm.tolist(),
            "recall": {c: float(r) for c, r in zip(classes, per_class_recall(cm))}}


# ----------------------------------------------------------------------------------------------- evaluate
def zero_shot(model, manifest_part, audio_emb: np.ndarray, cache=None) -> dict:
    """Zero-shot category classification of a split's clips (``audio_emb`` [M, D], one row per clip of
    ``manifest_part``): the metrics of :func:`classification_report`, plus the prompts' count and the clips used."""
    emotions = list(manifest_part.emotion or [""] * len(manifest_part))
    classes = zero_shot_classes(emotions)
    if len(classes) < MIN_CLASSES:
        raise ValueError(f"zero-shot classification needs at least {MIN_CLASSES} emotion categories in the split; "
                         f"it has {classes or 'none'}")
    rows = np.array([i for i, e in enumerate(emotions) if e in classes], dtype=np.int64)
    index = {c: k for k, c in enumerate(classes)}
    y_true = np.array([index[emotions[i]] for i in rows], dtype=np.int64)
    y_pred = predict(audio_emb[rows], class_embeddings(model, classes, cache))
    report = classification_report(y_true, y_pred, classes)
    report.update(clips=int(len(rows)), prompts_per_class=len(TEMPLATES),
                  prompts={c: class_prompts(c) for c in classes},
                  predicted=dict(Counter(classes[k] for k in y_pred.tolist())))
    return report
