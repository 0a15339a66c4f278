"""Zero-shot category classification: metrics against naive implementations, a perfect aligner, a trained model."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from emorank.evaluation.compare import EXTRA_COLUMNS, expected_columns
from emorank.encoders.base import TextEncoder
from emorank.model.core import EmotionRankCLAP, ModelConfig
from emorank.evaluation.zeroshot import (ADJECTIVES, TEMPLATES, accuracy, class_prompts, classification_report,
                                         confusion_matrix, macro_f1, predict, uar, zero_shot, zero_shot_classes)


# ------------------------------------------------------------------------------------ naive oracles
def naive_uar(y_true, y_pred):
    classes = sorted(set(y_true))
    recalls = []
    for c in classes:
        idx = [i for i, t in enumerate(y_true) if t == c]
        recalls.append(sum(y_pred[i] == c for i in idx) / len(idx))
    return sum(recalls) / len(recalls)


def naive_macro_f1(y_true, y_pred):
    scores = []
    for c in sorted(set(y_true)):
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_naive_implementations(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(2, 7))
    y_true = rng.integers(0, n_classes, size=int(rng.integers(5, 80)))
    y_true[:n_classes] = np.arange(n_classes)  # every class occurs
    y_pred = np.where(rng.random(len(y_true)) < 0.5, y_true, rng.integers(0, n_classes, size=len(y_true)))
    if seed % 2:
        y_pred[y_pred == n_classes - 1] = 0  # a class never predicted: precision 0, no NaN
    cm = confusion_matrix(y_true, y_pred, n_classes)
    assert cm.sum() == len(y_true) and cm[y_true[0], y_pred[0]] >= 1
    assert uar(cm) == pytest.approx(naive_uar(y_true.tolist(), y_pred.tolist()))
    assert macro_f1(cm) == pytest.approx(naive_macro_f1(y_true.tolist(), y_pred.tolist()))
    assert accuracy(cm) == pytest.approx(np.mean(y_true == y_pred))


def test_hand_computed_values():
    # true: 0 0 0 0 1 1 2 2 ; pred: 0 0 0 1 1 0 2 1
    y_true, y_pred = [0, 0, 0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 0, 2, 1]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 1]]  # rows = true class
    assert uar(cm) == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    assert accuracy(cm) == pytest.approx(5 / 8)
    # F1: class 0 P=3/4 R=3/4 -> .75; class 1 P=1/3 R=1/2 -> .4; class 2 P=1 R=1/2 -> 2/3
    assert macro_f1(cm) == pytest.approx((0.75 + 0.4 + 2 / 3) / 3)
    # UAR differs from accuracy on imbalanced data: always predicting the majority class
    majority = confusion_matrix([0] * 9 + [1], [0] * 10, 2)
    assert accuracy(majority) == pytest.approx(0.9) and uar(majority) == pytest.approx(0.5)
    assert macro_f1(majority) == pytest.approx((2 * 0.9 * 1 / 1.9 + 0) / 2)


def test_prompts_and_classes():
    assert zero_shot_classes(["sad", "", "angry", "other", "sad"]) == ["angry", "sad"]
    assert zero_shot_classes(None) == []
    prompts = class_prompts("angry")
    assert len(prompts) == len(TEMPLATES) >= 4 and len(set(prompts)) == len(prompts)
    assert "the person is feeling angry" in prompts and "The person is speaking in an angry voice." in prompts
    assert "The person is speaking in a fearful voice." in class_prompts("fear")
    assert all(not any(ch.isdigit() for ch in p) for c in ADJECTIVES for p in class_prompts(c))


# ---------------------------------------------------------------------------------- perfect aligner
CLASSES = ["angry", "happy", "neutral", "sad"]


class KeywordTextEncoder(TextEncoder):
    """A transparent text encoder: one-hot of the category adjective a text contains."""

    name = "keyword"

    @property
    def dim(self) -> int:
        return len(CLASSES)

    def fingerprint(self) -> str:
        return "keyword"

    def encode(self, texts):
        out = np.zeros((len(texts), len(CLASSES)), np.float32)
        for i, text in enumerate(texts):
            for k, c in enumerate(CLASSES):
                if f" {ADJECTIVES[c]}" in f" {text.lower()}":
                    out[i, k] = 1.0
        assert (out.sum(axis=1) == 1).all(), texts
        return out


def perfect_aligner() -> EmotionRankCLAP:
    """Identity heads (ReLU passes the non-negative one-hot features): audio and text of a class coincide."""
    model = EmotionRankCLAP(ModelConfig(audio_dim=4, text_dim=4, embed_dim=4))
    with torch.no_grad():
        for head in (model.audio_proj, model.text_proj):
            head.linear.weight.copy_(torch.eye(4))
            head.linear.bias.zero_()
    model._text_encoder = KeywordTextEncoder()
    return model.eval()


def test_a_perfect_aligner_scores_one():
    rng = np.random.default_rng(0)
    truth = rng.permutation(np.repeat(np.arange(len(CLASSES)), [9, 5, 3, 1]))  # imbalanced
    features = np.eye(len(CLASSES), dtype=np.float32)[truth] + 0.05 * rng.random((len(truth), 4)).astype(np.float32)
    model = perfect_aligner()
    audio_emb = model.embed_audio_features(features)
    emotions = [CLASSES[k] for k in truth] + ["other", ""]  # not emotions: left out
    audio_emb = np.concatenate([audio_emb, audio_emb[:2]])
    report = zero_shot(model, SimpleNamespace(emotion=emotions), audio_emb)
    assert report["classes"] == CLASSES and report["clips"] == len(truth)
    assert report["zs_uar"] == report["zs_accuracy"] == report["zs_macro_f1"] == 1.0
    assert np.array_equal(np.array(report["confusion"]), np.diag([9, 5, 3, 1]))
    # the same embeddings with the class labels rotated: every clip wrong
    shifted = [CLASSES[(k + 1) % 4] for k in truth]
    wrong = zero_shot(model, SimpleNamespace(emotion=shifted), audio_emb[:len(truth)])
    assert wrong["zs_uar"] == wrong["zs_accuracy"] == wrong["zs_macro_f1"] == 0.0


def test_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2"):
        zero_shot(perfect_aligner(), SimpleNamespace(emotion=["sad", "sad", ""]), np.zeros((3, 4), np.float32))


def test_predict_is_the_highest_cosine():
    class_emb = np.eye(3)
    audio = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8], [0.1, 0.7, 0.6]])
    assert predict(audio, class_emb).tolist() == [0, 2, 1]
    report = classification_report([0, 2, 2], [0, 2, 1], ["a", "b", "c"])
    assert report["support"] == [1, 0, 2] and report["zs_uar"] == pytest.approx((1 + 0.5) / 2)


# --------------------------------------------------------------------------- evaluate and compare
def test_evaluate_reports_zero_shot_on_a_trained_model(trained_checkpoint, demo_manifest, session_cache):
    from emorank.evaluation.evaluate import EvalConfig, evaluate

    model = EmotionRankCLAP.from_checkpoint(trained_checkpoint)
    report = evaluate(model, demo_manifest, "test", EvalConfig(n_trials=2, n_lists=3), session_cache,
                      progress=False)
    zs, meta = report["zero_shot"], report["meta"]
    test_part = demo_manifest.split_of("test")
    assert meta["categories"] == zero_shot_classes(test_part.emotion) and len(meta["categories"]) >= 2
    assert zs["classes"] == meta["categories"]
    # recomputed here: each clip's class is the prompt-averaged class embedding nearest to its audio embedding
    feats = session_cache.audio_features(test_part.path, model.audio_encoder, progress=False)
    audio = model.embed_audio_features(feats.values, test_part.speaker)  # [M, D]
    classes = zs["classes"]
    class_emb = np.stack([model.encode_text(class_prompts(c)).mean(axis=0) for c in classes])  # [C, D]
    class_emb /= np.linalg.norm(class_emb, axis=1, keepdims=True)
    rows = [i for i, e in enumerate(test_part.emotion) if e in classes]
    y_true = [classes.index(test_part.emotion[i]) for i in rows]
    y_pred = [int(np.argmax(class_emb @ audio[i])) for i in rows]  # the highest cosine
    assert zs["zs_uar"] == pytest.approx(naive_uar(y_true, y_pred))
    assert zs["zs_macro_f1"] == pytest.approx(naive_macro_f1(y_true, y_pred))
    assert zs["confusion"] == [[sum(t == a and p == b for t, p in zip(y_true, y_pred)) for b in range(len(classes))]
                               for a in range(len(classes))]
    cm = np.array(zs["confusion"])
    assert cm.shape == (len(zs["classes"]),) * 2 and cm.sum() == zs["clips"] == sum(zs["support"])
    assert zs["zs_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert zs["chance_uar"] == pytest.approx(1 / len(zs["classes"]))


def test_compare_asks_for_zero_shot_columns_only_where_a_corpus_has_categories():
    zs_columns = {"zs_uar", "zs_accuracy", "zs_macro_f1"}
    assert zs_columns <= set(EXTRA_COLUMNS)
    assert zs_columns <= set(expected_columns({"meta": {"categories": ["angry", "sad"]}}))
    assert zs_columns <= set(expected_columns({"meta": {}}))  # an older report: evaluated again, once
    without = expected_columns({"meta": {"categories": []}})
    assert not zs_columns & set(without) and "ccc_arousal" in without
    assert not zs_columns & set(expected_columns({"meta": {"categories": ["neutral"]}}))
