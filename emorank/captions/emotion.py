"""Caption builders of the categorical baselines: CLAP-template and CLAP4emo-style.

Both builders share one interface with every caption builder of emorank::

    builder = LexiconCaptionBuilder(seed=0).fit(train_manifest)   # fit is a no-op here
    captions = builder.build(manifest)                            # one caption per row

A row's caption depends only on the builder's settings, its seed and the row's key (``build(..., keys=)``; the
row's stable id ``manifest.ids[i]`` by default, the audio file's content hash in training), never on the other rows
or their order, so a caption cache stays valid when a manifest is filtered or shuffled.

* :class:`TemplateCaptionBuilder` -- CLAP-template (EmotionRankCLAP, section 4.3): "speech has {emotion} emotion".
* :class:`LexiconCaptionBuilder` -- CLAP4emo-style varied natural-language captions. CLAP4emo (Lin et al., ICASSP
  2024) writes them with ChatGPT and the NRC lexicon; emorank ships its own hand-written lexicon and sentence
  templates instead (no network, no licensed word list), and accepts a user's caption file (e.g. the CLAP4emo
  release, which emorank does not bundle).

Rows without a categorical label (``emotion`` is ``""`` or ``"other"``) are captioned from the row's valence-arousal
*region* (our interpretation: the paper's baselines assume a category on every row): "speech has negative calm
emotion". Region words come from :data:`REGION_GRIDS`; labels unknown to the lexicon are treated the same way by the
lexicon builder.
Captions never contain digits.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emorank.captions.va import CaptionValueError
from emorank.data.manifest import normalise_emotion


class CaptionError(CaptionValueError):
    """A row cannot be captioned (bad label, missing valence/arousal, builder not fitted, wrong feature shape).

    A :class:`emorank.captions.va.CaptionValueError` (hence a ValueError), so one ``except`` covers every builder."""


class CaptionFileError(CaptionError):
    """A user-supplied caption file is missing, unreadable or malformed; the message names the file."""


# ---------------------------------------------------------------- labels
_LABEL_RE = re.compile(r"^[a-z][a-z '\-/]*$")
NOT_A_CATEGORY = frozenset({"other"})  # e.g. MSP-Podcast "O": captioned like a row without a category


def canonical_emotion(label: str, *, where: str = "") -> str:
    """The category name of ``label`` as the manifest spells it (``"Anger"`` -> ``"angry"``, see
    :func:`emorank.data.manifest.normalise_emotion`); "" for unknown and for :data:`NOT_A_CATEGORY` labels.
    Raises CaptionError on digits or odd characters.

    >>> canonical_emotion("Anger")
    'angry'
    """
    text = normalise_emotion(" ".join(str(label).split()))
    if text and not _LABEL_RE.match(text):
        raise CaptionError(f"{where}emotion label {label!r} is not a word (letters, spaces, hyphens, apostrophes "
                           "and slashes only; captions must not contain digits)")
    return "" if text in NOT_A_CATEGORY else text


# ---------------------------------------------------------------- valence-arousal regions
@dataclass(frozen=True)
class RegionGrid:
    """Cut points on the 1..7 scale and the word for each band (low to high) of valence and of arousal."""

    edges: tuple[float, ...]
    valence_words: tuple[str, ...]
    arousal_words: tuple[str, ...]


# Our interpretation: equal-width bands of the 1..7 label scale (quadrants cut at the midpoint 4; the 3x3 grid at
# 3 and 5). A value on a cut point belongs to the upper band.
REGION_GRIDS: dict[str, RegionGrid] = {
    "quadrant": RegionGrid((4.0,), ("negative", "positive"), ("calm", "energetic")),
    "3x3": RegionGrid((3.0, 5.0), ("negative", "neutral", "positive"), ("calm", "moderate", "energetic")),
}


def get_region_grid(name: str) -> RegionGrid:
    """The grid called ``name``; an unknown name raises an error listing the valid ones."""
    if name not in REGION_GRIDS:
        raise CaptionError(f"unknown region grid {name!r}; valid: {', '.join(sorted(REGION_GRIDS))}")
    return REGION_GRIDS[name]


def region_levels(valence: float, arousal: float, grid: str = "quadrant", *, where: str = "") -> tuple[int, int]:
    """Band indices (valence, arousal) of a point; raises CaptionError when either value is not finite."""
    if not (np.isfinite(valence) and np.isfinite(arousal)):
        raise CaptionError(f"{where}no emotion category and no valence/arousal (valence={valence}, "
                           f"arousal={arousal}): cannot caption this row")
    edges = get_region_grid(grid).edges
    return int(np.searchsorted(edges, valence, side="right")), int(np.searchsorted(edges, arousal, side="right"))


def region_name(valence: float, arousal: float, grid: str = "quadrant", *, where: str = "") -> str:
    """Words naming the region of a point, e.g. ``"negative calm"`` (valence word then arousal word)."""
    v, a = region_levels(valence, arousal, grid, where=where)
    spec = get_region_grid(grid)
    return f"{spec.valence_words[v]} {spec.arousal_words[a]}"


# ---------------------------------------------------------------- determinism
def row_rng(seed: int, row_id: str) -> np.random.Generator:
    """A generator that depends only on (seed, row id): captions do not change with row order or process."""
    digest = hashlib.sha256(str(row_id).encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CaptionError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def config_from_spec(config_cls: type, spec: dict, kind: str, extra: Sequence[str] = ()):
    """A builder's config dataclass from its ``to_dict`` spec (keys ``builder``, the config fields, and ``extra``
    state keys); a spec of another builder or with unknown keys is an error."""
    if spec.get("builder", kind) != kind:
        raise CaptionError(f"spec is for caption builder {spec.get('builder')!r}, not {kind!r}")
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(spec) - known - {"builder", *extra})
    if unknown:
        raise CaptionError(f"unknown {kind} caption builder settings {unknown}; valid: {sorted(known)}")
    return config_cls(**{k: v for k, v in spec.items() if k in known})


def _where(i: int, row_id: str) -> str:
    return f"row {i} ({row_id}): "


# ---------------------------------------------------------------- CLAP-template
@dataclass
class TemplateCaptionConfig:
    """Settings of :class:`TemplateCaptionBuilder`."""

    template: str = "speech has {emotion} emotion"
    region_grid: str = "quadrant"  # names the V-A region of rows without a category (our interpretation)
    seed: int = 0  # unused (the template has no randomness); accepted so that every builder takes ``seed=``


class TemplateCaptionBuilder:
    """CLAP-template captions: ``"speech has {emotion} emotion"`` from the categorical label.

    The label is mapped to its canonical name (``"anger"`` -> ``"angry"``, see :func:`canonical_emotion`); a label
    that is not an alias is used as written (lower-cased). Rows without a label name their valence-arousal region
    instead: ``"speech has negative calm emotion"`` (our interpretation; ``region_grid`` picks the quadrant or the
    3x3 split of :data:`REGION_GRIDS`). Deterministic: there is no randomness at all.
    """

    kind = "template"

    def __init__(self, config: TemplateCaptionConfig | None = None, **kwargs: Any) -> None:
        self.config = config or TemplateCaptionConfig(**kwargs)
        if "{emotion}" not in self.config.template or re.search(r"\d", self.config.template):
            raise CaptionError(f"template {self.config.template!r} must contain '{{emotion}}' and no digits")
        get_region_grid(self.config.region_grid)

    def fit(self, manifest, features: np.ndarray | None = None) -> "TemplateCaptionBuilder":
        """Nothing to learn; returns self."""
        return self

    def build(self, manifest, features: np.ndarray | None = None, keys=None) -> list[str]:
        """One caption per row of ``manifest`` (``keys`` is accepted like every builder's; a template has no
        phrasing to seed)."""
        ids = manifest.ids  # computed once: a property may rebuild the list on each access
        return [self.caption(manifest.emotion[i], float(manifest.valence[i]), float(manifest.arousal[i]),
                             where=_where(i, ids[i])) for i in range(len(manifest))]

    def caption(self, emotion: str, valence: float = float("nan"), arousal: float = float("nan"),
                *, where: str = "") -> str:
        """The caption of one row."""
        label = canonical_emotion(emotion, where=where)
        if not label:
            label = region_name(valence, arousal, self.config.region_grid, where=where)
        return self.config.template.format(emotion=label)

    def to_dict(self) -> dict:
        """JSON-serialisable settings (stored in a checkpoint's config)."""
        return {"builder": self.kind, **asdict(self.config)}

    @classmethod
    def from_dict(cls, spec: dict) -> "TemplateCaptionBuilder":
        """Rebuild from :meth:`to_dict`."""
        return cls(config_from_spec(TemplateCaptionConfig, spec, cls.kind))


# ---------------------------------------------------------------- CLAP4emo-style lexicon
@dataclass(frozen=True)
class LexiconEntry:
    """Words for one emotion: adjectives ("the speaker sounds ..."), nouns ("a sense of ..."), and speaking-style
    phrases that follow a verb of speaking ("speaks ...")."""

    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]
    styles: tuple[str, ...]


def _entry(adjectives: str, nouns: str, styles: str) -> LexiconEntry:
    split = lambda text, sep: tuple(w.strip() for w in text.split(sep) if w.strip())  # noqa: E731
    return LexiconEntry(split(adjectives, ","), split(nouns, ","), split(styles, ";"))


# Written for emorank (not the NRC lexicon): synonyms and speaking-style descriptors per canonical category.
EMOTION_LEXICON: dict[str, LexiconEntry] = {
    "neutral": _entry(
        "neutral, matter-of-fact, composed, unemotional, impassive, even-tempered, level-headed, detached",
        "neutrality, composure, detachment, equanimity, evenness",
        "in a flat, even tone; with a steady, level voice; at an ordinary pace; without much inflection;"
        "in a plain conversational manner; with an unremarkable, even rhythm; in a businesslike way"),
    "calm": _entry(
        "calm, serene, relaxed, peaceful, tranquil, soothing, placid, unhurried",
        "calm, serenity, tranquillity, ease, peace",
        "in a soft, gentle voice; at a slow, relaxed pace; with a smooth and soothing tone; with long, easy pauses;"
        "in a quiet, measured way; with a warm, low voice; with gentle, even breathing"),
    "happy": _entry(
        "happy, cheerful, joyful, delighted, glad, upbeat, merry, pleased, content",
        "joy, happiness, delight, cheer, gladness, contentment",
        "with a bright, lively tone; with a smile in the voice; in a warm, bouncy manner;"
        "with rising, playful intonation; with a light, energetic rhythm; in a warm and friendly voice;"
        "with a hint of laughter"),
    "sad": _entry(
        "sad, sorrowful, unhappy, gloomy, downcast, melancholy, dejected, heartbroken, miserable, despondent",
        "sadness, sorrow, grief, melancholy, despair, gloom",
        "in a low, heavy voice; at a slow, dragging pace; with a soft, trembling tone; with long, sighing pauses;"
        "in a quiet, subdued way; with a falling, flat intonation; with a tearful catch in the voice"),
    "angry": _entry(
        "angry, furious, irritated, annoyed, enraged, hostile, indignant, irate",
        "anger, rage, fury, irritation, hostility, indignation",
        "in a loud, harsh voice; with sharp, clipped words; with a tense and forceful tone;"
        "at a fast, aggressive pace; with a raised voice; through gritted teeth; with heavy emphasis on each word"),
    "fear": _entry(
        "fearful, frightened, scared, anxious, nervous, terrified, panicked, uneasy, worried",
        "fear, anxiety, dread, panic, terror, worry",
        "in a shaky, trembling voice; with a tense, breathy tone; at a hurried, uneven pace;"
        "with a high, strained pitch; with nervous hesitations; in a hushed, trembling whisper"),
    "disgust": _entry(
        "disgusted, repulsed, revolted, sickened, appalled, nauseated, repelled",
        "disgust, revulsion, distaste, repugnance, loathing",
        "with a grimacing, nasal tone; in a low, scornful voice; with drawn-out, sneering words;"
        "with an audible shudder; in a clipped and distasteful manner; with a groan of distaste"),
    "surprise": _entry(
        "surprised, astonished, amazed, startled, stunned, astounded, bewildered",
        "surprise, astonishment, amazement, wonder, disbelief",
        "with a sudden rise in pitch; in a high, exclaiming voice; with a sharp intake of breath;"
        "with wide, rising intonation; at an abrupt, quickened pace; with a gasp"),
    "boredom": _entry(
        "bored, uninterested, weary, listless, apathetic, indifferent, tired, jaded",
        "boredom, apathy, weariness, indifference, tedium",
        "in a monotonous drone; at a slow, sluggish pace; with flat, lifeless intonation;"
        "with drawn-out, lazy words; with little energy; in a tired, sighing voice"),
    "contempt": _entry(
        "contemptuous, scornful, disdainful, dismissive, condescending, sneering, mocking, sarcastic",
        "contempt, scorn, disdain, derision, condescension",
        "with a cold, mocking tone; in a condescending manner; with a dismissive sneer;"
        "with slow, deliberate sarcasm; in a cool, superior voice; with a scoffing laugh"),
    "frustration": _entry(
        "frustrated, exasperated, irritable, aggravated, impatient, annoyed, vexed",
        "frustration, exasperation, impatience, annoyance, irritation",
        "with an exasperated sigh; in a strained, tense voice; with impatient, clipped phrases;"
        "with a tired but sharp tone; at an uneven, agitated pace; with a groan of impatience"),
    "excited": _entry(
        "excited, thrilled, enthusiastic, eager, energetic, exhilarated, animated, ecstatic",
        "excitement, enthusiasm, exhilaration, eagerness, thrill",
        "at a fast, breathless pace; with a loud, energetic voice; with rapid, rising intonation;"
        "with lively emphasis; in a high, animated tone; with bursts of laughter"),
}

# Region fallback: words per valence band and per arousal band, for each grid size (2 or 3 bands).
_VALENCE_WORDS = {
    2: (("negative", "unpleasant", "displeased", "unhappy"), ("positive", "pleasant", "pleased", "content")),
    3: (("negative", "unpleasant", "displeased", "unhappy"), ("neutral", "emotionally even", "unmoved"),
        ("positive", "pleasant", "pleased", "content")),
}
_AROUSAL_WORDS = {
    2: (("calm", "subdued", "low-energy", "relaxed"), ("energetic", "intense", "animated", "highly activated")),
    3: (("calm", "subdued", "low-energy", "relaxed"), ("moderately energetic", "steady", "moderately active"),
        ("energetic", "intense", "animated", "highly activated")),
}
_AROUSAL_STYLES = {
    2: (("at a slow, relaxed pace", "in a soft, quiet voice", "with gentle intonation", "with little energy"),
        ("at a fast, lively pace", "in a loud, energetic voice", "with strong emphasis", "with lively intonation")),
    3: (("at a slow, relaxed pace", "in a soft, quiet voice", "with gentle intonation", "with little energy"),
        ("at an ordinary pace", "with moderate energy", "in a steady voice", "with some variation in pitch"),
        ("at a fast, lively pace", "in a loud, energetic voice", "with strong emphasis", "with lively intonation")),
}

# Sentence templates. Slots: {adj}, {a_adj} / {A_adj} (adjective with "a"/"an", capitalised), {noun}, {style}.
LEXICON_TEMPLATES: tuple[str, ...] = (
    "The speaker sounds {adj}.",
    "The speaker sounds {adj} and speaks {style}.",
    "{A_adj} person speaking {style}.",
    "{A_adj} speaker talks {style}.",
    "Someone talks {style}, sounding {adj}.",
    "The person is speaking {style} and sounds {adj}.",
    "This is {a_adj} utterance, spoken {style}.",
    "The tone of voice is {adj}.",
    "The utterance sounds {adj}, delivered {style}.",
    "The speaker's mood comes across as {adj}.",
    "The speaker seems {adj}, speaking {style}.",
    "A person who sounds {adj} says something {style}.",
    "The speaker is {adj}, and the words come {style}.",
    "Speaking {style}, the person sounds {adj}.",
    "In this clip someone sounds {adj}.",
    "The person talks {style}; the mood is clearly {adj}.",
    "A recording of someone who sounds {adj}.",
    "The voice carries a sense of {noun}.",
    "You can hear {noun} in the way the person speaks {style}.",
    "Spoken {style}, the sentence conveys {noun}.",
    "A person expresses {noun} while speaking {style}.",
    "There is {noun} in this voice.",
    "The speaker's words are full of {noun}.",
    "This speech conveys {noun}.",
    "Someone speaks {style}, expressing {noun}.",
)


def with_article(word: str) -> str:
    """``"an angry"``, ``"a calm"`` (vowel-letter rule; the lexicon avoids the exceptions)."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def fill_template(template: str, adj: str = "", noun: str = "", style: str = "") -> str:
    """A template with its slots filled."""
    a_adj = with_article(adj) if adj else ""
    return template.format(adj=adj, a_adj=a_adj, A_adj=a_adj[:1].upper() + a_adj[1:], noun=noun, style=style)


def region_entry(valence_level: int, arousal_level: int, n_bands: int) -> LexiconEntry:
    """Lexicon words for a valence-arousal region (no nouns: noun templates are skipped for regions)."""
    adjectives = tuple(f"{v} and {a}" for v in _VALENCE_WORDS[n_bands][valence_level]
                       for a in _AROUSAL_WORDS[n_bands][arousal_level])
    return LexiconEntry(adjectives, (), _AROUSAL_STYLES[n_bands][arousal_level])


def usable_templates(entry: LexiconEntry, templates: Sequence[str] = LEXICON_TEMPLATES) -> list[str]:
    """The templates whose slots ``entry`` can fill."""
    def ok(t: str) -> bool:
        needs_noun = "{noun}" in t
        needs_adj = any(s in t for s in ("{adj}", "{a_adj}", "{A_adj}"))
        needs_style = "{style}" in t
        return (not needs_noun or bool(entry.nouns)) and (not needs_adj or bool(entry.adjectives)) \
            and (not needs_style or bool(entry.styles))
    return [t for t in templates if ok(t)]


def sample_lexicon_caption(entry: LexiconEntry, rng: np.random.Generator,
                           templates: Sequence[str] = LEXICON_TEMPLATES) -> str:
    """One caption: a template and its slot words drawn uniformly with ``rng``."""
    options = usable_templates(entry, templates)
    template = options[rng.integers(len(options))]
    pick = lambda words: words[rng.integers(len(words))] if words else ""  # noqa: E731
    return fill_template(template, adj=pick(entry.adjectives), noun=pick(entry.nouns), style=pick(entry.styles))


# ---------------------------------------------------------------- user caption files
@dataclass
class CaptionTable:
    """Captions read from a user file: by emotion (several per category) and/or by clip (id, path or file name)."""

    by_emotion: dict[str, list[str]]
    by_clip: dict[str, str]

    def for_row(self, row_id: str, path: str) -> str | None:
        """The clip's own caption, looked up by id, then absolute path, then file name."""
        for key in (row_id, path, os.path.basename(path)):
            if key in self.by_clip:
                return self.by_clip[key]
        return None


def _check_caption(text: Any, file: str, key: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CaptionFileError(f"{file}: caption for {key!r} must be a non-empty string, got {text!r}")
    if re.search(r"\d", text):
        raise CaptionFileError(f"{file}: caption for {key!r} contains a digit ({text!r}); captions must not")
    return " ".join(text.split())


def _table_from_pairs(pairs: list[tuple[str, str, str]], file: str) -> CaptionTable:
    """Build a table from (kind, key, caption) triples, kind in {"emotion", "clip"}."""
    table = CaptionTable({}, {})
    for kind, key, text in pairs:
        caption = _check_caption(text, file, key)
        if kind == "emotion":
            label = canonical_emotion(key, where=f"{file}: ")
            if not label:
                raise CaptionFileError(f"{file}: empty emotion key for caption {caption!r}")
            table.by_emotion.setdefault(label, []).append(caption)
        else:
            key = str(key).strip()
            if key in table.by_clip and table.by_clip[key] != caption:
                raise CaptionFileError(f"{file}: clip {key!r} has two different captions")
            table.by_clip[key] = caption
    return table


def _read_json_pairs(file: str) -> list[tuple[str, str, str]]:
    data = json.loads(Path(file).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not data:
        raise CaptionFileError(f"{file}: expected a non-empty JSON object (emotion -> list of captions, "
                               "or path -> caption)")
    pairs = []
    for key, value in data.items():
        if isinstance(value, list):
            if not value:
                raise CaptionFileError(f"{file}: emotion {key!r} has an empty caption list")
            pairs.extend(("emotion", key, v) for v in value)
        else:
            pairs.append(("clip", key, value))
    return pairs


def _read_csv_pairs(file: str) -> list[tuple[str, str, str]]:
    with open(file, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "caption" not in columns or not ({"emotion", "path"} & set(columns)):
            raise CaptionFileError(f"{file}: CSV needs a 'caption' column and an 'emotion' or 'path' column; "
                                   f"found {reader.fieldnames}")
        kind = "clip" if "path" in columns else "emotion"
        rows = [{k.strip().lower(): v for k, v in row.items() if k is not None} for row in reader]
    if not rows:
        raise CaptionFileError(f"{file}: CSV has no rows")
    return [(kind, r["path" if kind == "clip" else "emotion"] or "", r["caption"]) for r in rows]


def read_caption_file(file: str | os.PathLike) -> CaptionTable:
    """Read a caption file: JSON ``{"emotion": [captions...]}`` or ``{"path": "caption"}`` (both kinds may mix),
    or CSV with columns ``emotion,caption`` or ``path,caption``. Clip keys match a row's id, absolute path or file
    name. Captions must be non-empty and contain no digits."""
    file = str(file)
    if not os.path.isfile(file):
        raise CaptionFileError(f"{file}: caption file not found")
    suffix = Path(file).suffix.lower()
    try:
        if suffix == ".json":
            pairs = _read_json_pairs(file)
        elif suffix in (".csv", ".tsv"):
            pairs = _read_csv_pairs(file)
        else:
            raise CaptionFileError(f"{file}: caption file must end in .json or .csv")
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as err:
        raise CaptionFileError(f"{file}: cannot parse caption file: {err}") from err
    return _table_from_pairs(pairs, file)


# ---------------------------------------------------------------- CLAP4emo-style builder
@dataclass
class LexiconCaptionConfig:
    """Settings of :class:`LexiconCaptionBuilder`."""

    seed: int = 0
    region_grid: str = "quadrant"  # rows without a (known) category are captioned from their V-A region
    caption_file: str | None = None  # user captions (JSON or CSV), see :func:`read_caption_file`
    strict: bool = False  # with a per-clip caption file: a row missing from it raises instead of using the lexicon


class LexiconCaptionBuilder:
    """CLAP4emo-style captions: varied sentences from an emotion lexicon, one seeded draw per row.

    For a row labelled with a category of :data:`EMOTION_LEXICON` (after :func:`canonical_emotion`), a template of
    :data:`LEXICON_TEMPLATES` and its words (adjective, noun, speaking-style phrase) are drawn with a generator
    seeded by ``(seed, row id)``. Rows with no label, or a label the lexicon does not know, are captioned from their
    valence-arousal region with region words (our interpretation). With ``caption_file``, a clip's own caption
    wins, then a caption drawn from the file's captions for the row's emotion, then the built-in lexicon.
    """

    kind = "lexicon"

    def __init__(self, config: LexiconCaptionConfig | None = None, **kwargs: Any) -> None:
        self.config = config or LexiconCaptionConfig(**kwargs)
        _check_seed(self.config.seed)
        self._n_bands = len(get_region_grid(self.config.region_grid).edges) + 1
        self._table: CaptionTable | None = None

    @property
    def table(self) -> CaptionTable | None:
        """The user's captions, read on first use (so a checkpoint config naming the file loads without it)."""
        if self._table is None and self.config.caption_file:
            self._table = read_caption_file(self.config.caption_file)
        return self._table

    def fit(self, manifest, features: np.ndarray | None = None) -> "LexiconCaptionBuilder":
        """Nothing to learn; returns self."""
        return self

    def build(self, manifest, features: np.ndarray | None = None, keys=None) -> list[str]:
        """One caption per row of ``manifest``; ``keys`` seed each row's draw (default the row ids; training
        passes the clips' content hashes). A caption file is matched by row id or path whatever the keys."""
        ids = manifest.ids  # computed once: a property may rebuild the list on each access
        keys = ids if keys is None else keys
        return [self.caption(ids[i], manifest.emotion[i], float(manifest.valence[i]), float(manifest.arousal[i]),
                             path=manifest.path[i], where=_where(i, ids[i]), key=keys[i])
                for i in range(len(manifest))]

    def caption(self, row_id: str, emotion: str, valence: float = float("nan"), arousal: float = float("nan"),
                *, path: str = "", where: str = "", key: str | None = None) -> str:
        """The caption of one row (depends only on the settings, the seed and these arguments; ``key``, default
        ``row_id``, seeds the draw)."""
        label = canonical_emotion(emotion, where=where)
        rng = row_rng(self.config.seed, row_id if key is None else key)
        table = self.table
        if table is not None:
            own = table.for_row(row_id, path)
            if own is not None:
                return own
            if self.config.strict and table.by_clip:
                raise CaptionError(f"{where}no caption for this clip in {self.config.caption_file}")
            if label in table.by_emotion:
                options = table.by_emotion[label]
                return options[rng.integers(len(options))]
        return sample_lexicon_caption(self.entry_for(label, valence, arousal, where=where), rng)

    def entry_for(self, label: str, valence: float, arousal: float, *, where: str = "") -> LexiconEntry:
        """The lexicon entry of a canonical label, or of the V-A region when the label is empty or unknown."""
        if label in EMOTION_LEXICON:
            return EMOTION_LEXICON[label]
        v, a = region_levels(valence, arousal, self.config.region_grid, where=where)
        return region_entry(v, a, self._n_bands)

    def to_dict(self) -> dict:
        """JSON-serialisable settings (the caption file is stored by path)."""
        return {"builder": self.kind, **asdict(self.config)}

    @classmethod
    def from_dict(cls, spec: dict) -> "LexiconCaptionBuilder":
        """Rebuild from :meth:`to_dict`."""
        return cls(config_from_spec(LexiconCaptionConfig, spec, cls.kind))

