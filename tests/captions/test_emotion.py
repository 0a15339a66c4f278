"""Tests of the CLAP-template and CLAP4emo-style caption builders."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from emorank.data.manifest import CATEGORIES, Manifest
from emorank.captions.emotion import (EMOTION_LEXICON, LEXICON_TEMPLATES, REGION_GRIDS, CaptionError,
                                      CaptionFileError, LexiconCaptionBuilder, TemplateCaptionBuilder,
                                      canonical_emotion, fill_template, read_caption_file, region_entry, region_name)

LEXICON_CATEGORIES = list(EMOTION_LEXICON)


def make_manifest(n: int = 40, seed: int = 0, emotions: list[str] | None = None,
                  root: str = "/corpus") -> Manifest:
    rng = np.random.default_rng(seed)
    if emotions is None:
        cycle = LEXICON_CATEGORIES + [""]
        emotions = [cycle[i % len(cycle)] for i in range(n)]
    return Manifest(path=[f"{root}/spk{i % 7}/clip_{i:05d}.wav" for i in range(n)],
                    valence=rng.uniform(1, 7, n), arousal=rng.uniform(1, 7, n), emotion=emotions, root=root)


def naive_region(v: float, a: float, grid: str) -> str:
    """Region words by explicit comparisons (oracle for the searchsorted implementation)."""
    if grid == "quadrant":
        return ("negative" if v < 4 else "positive") + " " + ("calm" if a < 4 else "energetic")
    band = lambda x: 0 if x < 3 else (1 if x < 5 else 2)  # noqa: E731
    return ("negative", "neutral", "positive")[band(v)] + " " + ("calm", "moderate", "energetic")[band(a)]


# ---------------------------------------------------------------- template
def test_lexicon_covers_the_manifest_categories():
    assert set(EMOTION_LEXICON) == set(CATEGORIES) - {"other"}


def test_template_uses_the_category_label():
    m = make_manifest(len(LEXICON_CATEGORIES), emotions=LEXICON_CATEGORIES)
    captions = TemplateCaptionBuilder().fit(m).build(m)
    assert captions == [f"speech has {c} emotion" for c in LEXICON_CATEGORIES]


def test_template_resolves_aliases():
    m = make_manifest(3, emotions=["Anger", "HAPPINESS", "fearful"])
    assert TemplateCaptionBuilder().build(m) == ["speech has angry emotion", "speech has happy emotion",
                                                 "speech has fear emotion"]
    assert TemplateCaptionBuilder().caption("Sadness") == "speech has sad emotion"


@pytest.mark.parametrize("grid", sorted(REGION_GRIDS))
def test_template_names_the_region_without_category(grid):
    values = [1.0, 2.9, 3.0, 3.5, 4.0, 4.5, 5.0, 6.9, 7.0]
    va = [(v, a) for v in values for a in values]
    m = Manifest(path=[f"/c/{i}.wav" for i in range(len(va))], valence=[v for v, _ in va],
                 arousal=[a for _, a in va], emotion=["" if i % 2 else "other" for i in range(len(va))])
    captions = TemplateCaptionBuilder(region_grid=grid).build(m)
    assert captions == [f"speech has {naive_region(v, a, grid)} emotion" for v, a in va]


def test_region_example_from_the_brief():
    assert region_name(2.0, 2.0) == "negative calm"
    assert TemplateCaptionBuilder().caption("", 2.0, 2.0) == "speech has negative calm emotion"


def test_row_without_category_or_labels_names_the_row():
    m = Manifest(path=["/c/a.wav", "/c/b.wav"], valence=[3.0, np.nan], arousal=[3.0, 2.0], emotion=["sad", ""])
    with pytest.raises(CaptionError, match=r"row 1 \(b\.wav\)"):
        TemplateCaptionBuilder().build(m)
    with pytest.raises(CaptionError, match=r"b\.wav"):
        LexiconCaptionBuilder().build(m)


def test_unknown_grid_lists_valid_names():
    with pytest.raises(CaptionError, match="3x3.*quadrant"):
        TemplateCaptionBuilder(region_grid="hexagon")
    with pytest.raises(CaptionError, match="3x3.*quadrant"):
        LexiconCaptionBuilder(region_grid="hexagon")


def test_label_with_digits_is_rejected():
    with pytest.raises(CaptionError, match="'class3'"):
        canonical_emotion("class3")
    m = make_manifest(2, emotions=["sad", "emo7"])
    with pytest.raises(CaptionError, match=r"row 1 .*'emo7'"):
        TemplateCaptionBuilder().build(m)


def test_template_must_have_slot_and_no_digits():
    with pytest.raises(CaptionError):
        TemplateCaptionBuilder(template="speech has emotion")
    with pytest.raises(CaptionError):
        TemplateCaptionBuilder(template="speech has {emotion} emotion 2")


# ---------------------------------------------------------------- lexicon
def test_lexicon_captions_are_varied_clean_and_digit_free():
    m = make_manifest(2000)
    captions = LexiconCaptionBuilder(seed=0).build(m)
    assert len(captions) == len(m)
    assert len(set(captions)) >= 500
    for c in captions:
        assert not re.search(r"\d", c), c
        assert "{" not in c and "}" not in c and "  " not in c, c
        assert c[0].isupper() and c.endswith("."), c
        assert not re.search(r"\b[Aa] [aeiouAEIOU]", c), c
        assert not re.search(r"\b[Aa]n [^aeiouAEIOU\W]", c), c


def test_every_template_fills_for_every_category():
    for name, entry in EMOTION_LEXICON.items():
        assert entry.adjectives and entry.nouns and entry.styles, name
        for template in LEXICON_TEMPLATES:
            text = fill_template(template, entry.adjectives[0], entry.nouns[0], entry.styles[0])
            assert "{" not in text and text[0].isupper(), (name, template)


def test_lexicon_caption_speaks_of_the_row_category():
    m = make_manifest(600)
    captions = LexiconCaptionBuilder(seed=3).build(m)
    for emotion, caption in zip(m.emotion, captions):
        if emotion:
            entry = EMOTION_LEXICON[emotion]
            words = entry.adjectives + entry.nouns + entry.styles
            assert any(w in caption for w in words), (emotion, caption)


def test_lexicon_falls_back_to_region_words():
    n = 200
    m = Manifest(path=[f"/c/{i}.wav" for i in range(n)], valence=np.where(np.arange(n) % 2, 6.5, 1.5),
                 arousal=np.where(np.arange(n) % 4 < 2, 1.5, 6.5), emotion=[""] * n)
    captions = LexiconCaptionBuilder(seed=0).build(m)
    for v, a, caption in zip(m.valence, m.arousal, captions):
        entry = region_entry(int(v > 4), int(a > 4), 2)
        assert any(w in caption for w in entry.adjectives + entry.styles), caption
        other = region_entry(1 - int(v > 4), 1 - int(a > 4), 2)
        assert not any(w in caption for w in other.adjectives), caption


def test_lexicon_is_deterministic_per_id_and_order_free():
    m = make_manifest(300)
    base = dict(zip(m.ids, LexiconCaptionBuilder(seed=5).build(m)))
    again = dict(zip(m.ids, LexiconCaptionBuilder(seed=5).build(m)))
    assert base == again
    perm = np.random.default_rng(1).permutation(len(m))[:120]
    sub = m.subset(perm)
    assert dict(zip(sub.ids, LexiconCaptionBuilder(seed=5).build(sub))) == {i: base[i] for i in sub.ids}
    other_seed = LexiconCaptionBuilder(seed=6).build(m)
    assert sum(a != b for a, b in zip(base.values(), other_seed)) > len(m) // 2


def test_seed_must_be_non_negative_int():
    with pytest.raises(CaptionError, match="seed"):
        LexiconCaptionBuilder(seed=-1)
    with pytest.raises(CaptionError, match="seed"):
        LexiconCaptionBuilder(seed="a")


def test_caption_file_by_emotion(tmp_path):
    own = {"anger": ["The speaker is shouting in rage.", "A furious outburst."], "sad": ["Quiet weeping."]}
    file = tmp_path / "captions.json"
    file.write_text(json.dumps(own))
    m = make_manifest(260)
    captions = LexiconCaptionBuilder(caption_file=str(file)).build(m)
    lexicon_only = LexiconCaptionBuilder().build(m)
    for emotion, caption, fallback in zip(m.emotion, captions, lexicon_only):
        if emotion == "angry":
            assert caption in own["anger"]
        elif emotion == "sad":
            assert caption == "Quiet weeping."
        else:
            assert caption == fallback
    assert {c for e, c in zip(m.emotion, captions) if e == "angry"} == set(own["anger"])


def test_caption_file_by_clip_csv(tmp_path):
    m = make_manifest(6)
    file = tmp_path / "captions.csv"
    lines = ["path,caption", f"{m.ids[0]},A voice full of joy.", f"{m.path[1]},Someone mutters gloomily.",
             "clip_00002.wav,Loud and angry shouting."]
    file.write_text("\n".join(lines) + "\n")
    captions = LexiconCaptionBuilder(caption_file=str(file)).build(m)
    assert captions[:3] == ["A voice full of joy.", "Someone mutters gloomily.", "Loud and angry shouting."]
    assert captions[3:] == LexiconCaptionBuilder().build(m)[3:]
    with pytest.raises(CaptionError, match="clip_00003"):
        LexiconCaptionBuilder(caption_file=str(file), strict=True).build(m)


@pytest.mark.parametrize("name,content,match", [
    ("bad.json", '{"angry": ["Shouting at step 3."]}', "digit"),
    ("bad2.json", "{not json", "cannot parse"),
    ("empty.json", "{}", "non-empty"),
    ("bad.csv", "file,text\na.wav,hello\n", "'caption' column"),
    ("bad.txt", "hello", ".json or .csv"),
])
def test_bad_caption_files_name_the_file(tmp_path, name, content, match):
    file = tmp_path / name
    file.write_text(content)
    with pytest.raises(CaptionFileError, match=match) as err:
        read_caption_file(file)
    assert name in str(err.value)


def test_missing_caption_file_fails_on_first_use():
    builder = LexiconCaptionBuilder(caption_file="/nonexistent/captions.json")  # a stored config still loads
    with pytest.raises(CaptionFileError, match="captions.json: caption file not found"):
        builder.build(make_manifest(2))


@pytest.mark.parametrize("cls", [TemplateCaptionBuilder, LexiconCaptionBuilder])
def test_to_dict_round_trip(cls):
    m = make_manifest(80)
    builder = cls(seed=4, region_grid="3x3")
    spec = json.loads(json.dumps(builder.to_dict()))
    rebuilt = cls.from_dict(spec)
    assert rebuilt.build(m) == builder.build(m)
    with pytest.raises(CaptionError, match="unknown"):
        cls.from_dict({**spec, "colour": "red"})


@pytest.mark.parametrize("cls", [TemplateCaptionBuilder, LexiconCaptionBuilder])
def test_builders_take_seed_and_fit_features(cls):
    m = make_manifest(10)
    captions = cls(seed=1).fit(m, None).build(m, None)
    assert len(captions) == len(m) and all(captions)
