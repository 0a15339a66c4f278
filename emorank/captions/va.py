"""Valence-arousal speaking-style captions (DESIGN.md §3.5, paper §3.4 and Figure 2).

The paper asks OpenAI's o1 model, with the Figure 2 prompt, for one sentence per (valence, arousal) pair. emorank
ships a deterministic, offline stand-in and an optional client for any OpenAI-compatible endpoint:

* :func:`va_caption` / :class:`VACaptionBuilder` -- hand-written phrasings. Each axis has 13 ordered levels, one per
  0.5 step of the 1..7 label scale (the evaluation's query grid is 0.5, 1.0, ..., 7.0), each level with three
  synonymous phrases, combined by six sentence templates: 6 x 3 x 3 = 54 phrasings per (valence, arousal) cell.
  A value maps to its nearest level; values below 1 or above 7 clamp to the extreme levels.
* :class:`LLMCaptioner` -- the paper's prompt (:data:`FIGURE2_PROMPT`) sent to ``{url}/chat/completions``; answers
  are validated and cached in a JSON file so a corpus is captioned once.

Every caption starts with "The person is speaking" and contains no digits.

Example::

    >>> va_caption(6.5, 2.0)
    'The person is speaking in a quite calm manner, sounding very positive.'
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import numpy as np

CAPTION_PREFIX = "The person is speaking"
SCALE_MIN, SCALE_MAX, LEVEL_STEP = 1.0, 7.0, 0.5
LEVEL_VALUES: tuple[float, ...] = tuple(SCALE_MIN + LEVEL_STEP * i for i in range(13))  # 1.0, 1.5, ..., 7.0

# One row per level, low to high; the first phrase of a row is the level's canonical word (see `levels`).
# Intensity ladder (both sides of neutral): slightly < somewhat < moderately < quite < very < extremely.
VALENCE_PHRASES: tuple[tuple[str, ...], ...] = (
    ("extremely negative", "utterly miserable", "deeply distressed"),  # 1.0 very negative
    ("very negative", "very unhappy", "deeply upset"),  # 1.5
    ("quite negative", "clearly unhappy", "decidedly upset"),  # 2.0
    ("moderately negative", "fairly unhappy", "rather displeased"),  # 2.5
    ("somewhat negative", "somewhat unhappy", "mildly displeased"),  # 3.0
    ("slightly negative", "faintly unhappy", "slightly displeased"),  # 3.5
    ("neutral", "emotionally neutral", "matter-of-fact"),  # 4.0
    ("slightly positive", "faintly pleased", "slightly content"),  # 4.5
    ("somewhat positive", "somewhat happy", "mildly pleased"),  # 5.0
    ("moderately positive", "fairly happy", "rather pleased"),  # 5.5
    ("quite positive", "clearly happy", "decidedly cheerful"),  # 6.0
    ("very positive", "very happy", "delighted"),  # 6.5
    ("extremely positive", "utterly joyful", "ecstatic"),  # 7.0 very positive
)
AROUSAL_PHRASES: tuple[tuple[str, ...], ...] = (
    ("extremely calm", "utterly relaxed", "deeply subdued"),  # 1.0 very calm
    ("very calm", "very relaxed", "very subdued"),  # 1.5
    ("quite calm", "clearly relaxed", "decidedly subdued"),  # 2.0
    ("moderately calm", "fairly relaxed", "rather subdued"),  # 2.5
    ("somewhat calm", "somewhat relaxed", "mildly subdued"),  # 3.0
    ("slightly calm", "slightly relaxed", "faintly subdued"),  # 3.5
    ("steady", "even-paced", "measured"),  # 4.0
    ("slightly energetic", "slightly lively", "faintly animated"),  # 4.5
    ("somewhat energetic", "somewhat lively", "mildly animated"),  # 5.0
    ("moderately energetic", "fairly lively", "rather animated"),  # 5.5
    ("quite energetic", "clearly excited", "decidedly animated"),  # 6.0
    ("very energetic", "very excited", "highly animated"),  # 6.5
    ("extremely energetic", "intensely excited", "wildly animated"),  # 7.0 very active
)
AXES: dict[str, tuple[tuple[str, ...], ...]] = {"valence": VALENCE_PHRASES, "arousal": AROUSAL_PHRASES}

# {v}/{a}: a valence/arousal phrase; {an_v}/{an_a}: the same phrase with its indefinite article.
TEMPLATES: tuple[str, ...] = (
    "The person is speaking in {an_a} manner, sounding {v}.",
    "The person is speaking, sounding {v} and {a}.",
    "The person is speaking with {an_v} tone and {an_a} delivery.",
    "The person is speaking in a way that is {v} in mood and {a} in energy.",
    "The person is speaking with {an_a} voice that comes across as {v}.",
    "The person is speaking in {an_v} mood, and the delivery is {a}.",
)

FIGURE2_PROMPT = (
    "Given the following scale of emotions - valence (1-very negative; 7-very positive), arousal (1-very calm; "
    "7-very active), write a sentence describing a speaking style that is {VALENCE} on valence, {AROUSAL} on "
    "arousal. Do not use any numbers in the sentence. The sentence should start with: The person is speaking ..."
)

_DIGIT = re.compile(r"\d")


class CaptionValueError(ValueError):
    """A valence/arousal value, axis name, seed or count that captions cannot be built from."""


class LLMCaptionError(RuntimeError):
    """The caption endpoint failed or kept answering with an invalid caption; the message names the endpoint."""


# ---------------------------------------------------------------- levels and phrasing
def levels(axis: str) -> list[str]:
    """The ordered canonical level words of ``axis`` ("valence" or "arousal"), low to high (13 levels)."""
    if axis not in AXES:
        raise CaptionValueError(f"unknown axis {axis!r}; valid axes: {', '.join(AXES)}")
    return [row[0] for row in AXES[axis]]


def level_index(value: float, *, name: str = "value") -> int:
    """Index of the nearest level (0..12) of a value on the 1..7 scale; out-of-range values clamp.

    Halfway values round up (1.25 -> level of 1.5), so the mapping does not depend on banker's rounding.
    """
    v = float(value)
    if not np.isfinite(v):
        raise CaptionValueError(f"{name} must be a finite number on the 1..7 scale, got {value!r}")
    v = min(max(v, SCALE_MIN), SCALE_MAX)
    return int(np.floor((v - SCALE_MIN) / LEVEL_STEP + 0.5))


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def render_caption(template: int, valence_level: int, arousal_level: int, valence_word: int = 0,
                   arousal_word: int = 0) -> str:
    """The caption for explicit choices: template index, level indices (0..12) and synonym indices (0..2)."""
    v = VALENCE_PHRASES[valence_level][valence_word]
    a = AROUSAL_PHRASES[arousal_level][arousal_word]
    return TEMPLATES[template].format(v=v, a=a, an_v=_with_article(v), an_a=_with_article(a))


def n_phrasings() -> int:
    """Number of distinct captions per (valence, arousal) cell: templates x valence synonyms x arousal synonyms."""
    return len(TEMPLATES) * len(VALENCE_PHRASES[0]) * len(AROUSAL_PHRASES[0])


def _choices_from_ints(t: int, vw: int, aw: int) -> tuple[int, int, int]:
    return t % len(TEMPLATES), vw % len(VALENCE_PHRASES[0]), aw % len(AROUSAL_PHRASES[0])


def va_caption(valence: float, arousal: float, rng: np.random.Generator | int | None = None) -> str:
    """One caption for a (valence, arousal) point on the 1..7 scale.

    ``rng`` (a numpy Generator or an int seed) picks the template and synonyms; ``None`` gives the canonical
    phrasing (first template, canonical level words), so ``va_caption(v, a)`` is a stable, readable default.
    """
    vl, al = level_index(valence, name="valence"), level_index(arousal, name="arousal")
    if rng is None:
        return render_caption(0, vl, al)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    t, vw, aw = _choices_from_ints(*(int(x) for x in gen.integers(0, 1 << 30, size=3)))
    return render_caption(t, vl, al, vw, aw)


def _item_choices(seed: int, key: str) -> tuple[int, int, int]:
    """Phrasing choices of one item from (seed, key) alone: independent of batch order and process."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8"), digest_size=12).digest()
    ints = [int.from_bytes(digest[i:i + 4], "little") for i in (0, 4, 8)]
    return _choices_from_ints(*ints)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise CaptionValueError(f"seed must be an integer, got {seed!r}")
    return int(seed)


class VACaptionBuilder:
    """Deterministic valence-arousal captions for a batch of items.

    The phrasing of an item depends only on the seed and the item's id (``ids[i]``; its index ``i`` when no ids
    are given), never on the other items or their order, so a caption cache stays valid when a manifest is filtered
    or shuffled (pass ids for that). The levels depend only on the item's (valence, arousal).

    >>> VACaptionBuilder(seed=0)([1.0, 7.0], [4.0, 4.0], ids=["a.wav", "b.wav"])  # doctest: +SKIP
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = _check_seed(seed)

    def __repr__(self) -> str:
        return f"VACaptionBuilder(seed={self.seed})"

    def __call__(self, valence: Sequence[float] | np.ndarray, arousal: Sequence[float] | np.ndarray,
                 ids: Sequence[str] | None = None) -> list[str]:
        val = np.asarray(valence, dtype=np.float64).reshape(-1)  # [N]
        aro = np.asarray(arousal, dtype=np.float64).reshape(-1)  # [N]
        if val.shape != aro.shape:
            raise CaptionValueError(f"valence and arousal differ in length ({val.size} vs {aro.size})")
        if ids is not None and len(ids) != val.size:
            raise CaptionValueError(f"ids has {len(ids)} entries for {val.size} valence-arousal pairs")
        keys = [str(i) for i in ids] if ids is not None else [f"#{i}" for i in range(val.size)]
        return [self.caption(v, a, key) for v, a, key in zip(val, aro, keys)]

    def caption(self, valence: float, arousal: float, key: str) -> str:
        """The caption of one item identified by ``key``."""
        vl = level_index(valence, name=f"valence of item {key!r}")
        al = level_index(arousal, name=f"arousal of item {key!r}")
        t, vw, aw = _item_choices(self.seed, key)
        return render_caption(t, vl, al, vw, aw)


def caption_cli_text(valence: float, arousal: float, n: int = 1, seed: int = 0) -> list[str]:
    """``n`` distinct captions for one (valence, arousal) point, in a seeded order (the ``caption`` command)."""
    total = n_phrasings()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
        raise CaptionValueError(f"n must be an integer from 1 to {total} (distinct phrasings per point), got {n!r}")
    vl, al = level_index(valence, name="valence"), level_index(arousal, name="arousal")
    combos = [(t, vw, aw) for t in range(len(TEMPLATES)) for vw in range(len(VALENCE_PHRASES[0]))
              for aw in range(len(AROUSAL_PHRASES[0]))]
    order = np.random.default_rng(_check_seed(seed)).permutation(len(combos))[:n]
    return [render_caption(combos[i][0], vl, al, combos[i][1], combos[i][2]) for i in order]


# ---------------------------------------------------------------- LLM captions
def figure2_prompt(valence: float, arousal: float) -> str:
    """The paper's Figure 2 prompt with the values written with one decimal (e.g. "6.5")."""
    for name, value in (("valence", valence), ("arousal", arousal)):
        if not np.isfinite(float(value)):
            raise CaptionValueError(f"{name} must be a finite number, got {value!r}")
    return FIGURE2_PROMPT.format(VALENCE=f"{float(valence):.1f}", AROUSAL=f"{float(arousal):.1f}")


def clean_llm_answer(text: str) -> str:
    """The answer with whitespace collapsed and surrounding quotes or backticks removed."""
    return " ".join(str(text).split()).strip("\"'“”‘’` ")


def caption_problem(text: str) -> str | None:
    """Why ``text`` is not a valid V-A caption (None when valid): it must start with the prefix and have no digits."""
    if not text.startswith(CAPTION_PREFIX):
        return f"does not start with {CAPTION_PREFIX!r}"
    if _DIGIT.search(text):
        return "contains digits"
    return None


def _cache_key(model: str, prompt: str) -> str:
    return hashlib.sha256(f"{model}\x00{prompt}".encode("utf-8")).hexdigest()


def _write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LLMCaptioner:
    """Captions from an OpenAI-compatible chat endpoint with the paper's Figure 2 prompt, cached in a JSON file.

    Args:
        url: base URL of the API, e.g. ``http://127.0.0.1:8000/v1``; requests go to ``{url}/chat/completions``.
        model: model name sent in the request (the paper used OpenAI's o1).
        api_key: sent as ``Authorization: Bearer ...`` when given.
        cache_path: JSON file of earlier answers, keyed by model + prompt; a hit never calls the endpoint.
        timeout: seconds per HTTP request.
        max_retries: extra attempts when an answer is invalid (digits, wrong start) or the request fails.
        temperature: sent only when given (reasoning models such as o1 reject it).

    Values are written with one decimal in the prompt, so points that round alike share one cached caption (our
    interpretation of how the paper queried its LLM). Calling the captioner like :class:`VACaptionBuilder`
    (``captioner(valence, arousal, ids)``) captions a batch and saves the cache once at the end (also on error).
    """

    def __init__(self, url: str, model: str, api_key: str | None = None, cache_path: str | os.PathLike | None = None,
                 timeout: float = 30, max_retries: int = 2, temperature: float | None = None,
                 retry_wait: float = 1.0) -> None:
        if not url or not str(url).startswith(("http://", "https://")):
            raise CaptionValueError(f"LLM endpoint url must start with http:// or https://, got {url!r}")
        if not model:
            raise CaptionValueError("LLM model name must be a non-empty string")
        self.url = str(url).rstrip("/")
        self.model = str(model)
        self.api_key = api_key
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.temperature = temperature
        self.retry_wait = float(retry_wait)
        self._cache = self._read_cache()

    @property
    def endpoint(self) -> str:
        return f"{self.url}/chat/completions"

    def __repr__(self) -> str:
        return f"LLMCaptioner(url={self.url!r}, model={self.model!r}, cache_path={self.cache_path!r})"

    # ------------------------------------------------------------ cache
    def _read_cache(self) -> dict[str, dict]:
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CaptionValueError(f"caption cache {self.cache_path} is not a readable JSON file ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("entries", {}), dict):
            raise CaptionValueError(f"caption cache {self.cache_path} is not an emorank caption cache "
                                    "(expected an object with an 'entries' object)")
        return dict(data.get("entries", {}))

    def save(self) -> None:
        """Write the cache file atomically (temp file + rename); a no-op without ``cache_path``."""
        if self.cache_path is not None:
            _write_json_atomic(self.cache_path, {"format": "emorank-llm-captions", "version": 1,
                                                 "entries": self._cache})

    # ------------------------------------------------------------ captions
    def caption(self, valence: float, arousal: float) -> str:
        """One caption (from the cache, else from the endpoint, then saved)."""
        text, fresh = self._caption(valence, arousal)
        if fresh:
            self.save()
        return text

    def __call__(self, valence: Sequence[float] | np.ndarray, arousal: Sequence[float] | np.ndarray,
                 ids: Sequence[str] | None = None) -> list[str]:
        val = np.asarray(valence, dtype=np.float64).reshape(-1)
        aro = np.asarray(arousal, dtype=np.float64).reshape(-1)
        if val.shape != aro.shape:
            raise CaptionValueError(f"valence and arousal differ in length ({val.size} vs {aro.size})")
        out, fresh_any = [], False
        try:
            for v, a in zip(val, aro):
                text, fresh = self._caption(v, a)
                out.append(text)
                fresh_any |= fresh
        finally:
            if fresh_any:
                self.save()
        return out

    def _caption(self, valence: float, arousal: float) -> tuple[str, bool]:
        prompt = figure2_prompt(valence, arousal)
        key = _cache_key(self.model, prompt)
        hit = self._cache.get(key)
        if hit is not None and caption_problem(hit.get("caption", "")) is None:
            return hit["caption"], False
        text = self._ask_valid(prompt)
        self._cache[key] = {"model": self.model, "prompt": prompt, "caption": text}
        return text, True

    def _ask_valid(self, prompt: str) -> str:
        problems = []
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.retry_wait)
            try:
                answer = clean_llm_answer(self._post(prompt))
            except LLMCaptionError as err:
                problems.append(str(err))
                continue
            problem = caption_problem(answer)
            if problem is None:
                return answer
            problems.append(f"answer {answer[:120]!r} {problem}")
        raise LLMCaptionError(f"{self.endpoint} (model {self.model!r}) gave no valid caption in "
                              f"{self.max_retries + 1} attempts; last problem: {problems[-1]}")

    def _request_body(self, prompt: str) -> dict:
        body: dict = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        if self.temperature is not None:
            body["temperature"] = float(self.temperature)
        return body

    def _post(self, prompt: str) -> str:
        """The text of the first choice of one chat-completions request."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.endpoint, data=json.dumps(self._request_body(prompt)).encode("utf-8"),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise LLMCaptionError(f"{self.endpoint} answered HTTP {err.code} ({err.reason})") from err
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise LLMCaptionError(f"cannot reach {self.endpoint} ({err})") from err
        except ValueError as err:
            raise LLMCaptionError(f"{self.endpoint} did not answer with JSON ({err})") from err
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise LLMCaptionError(f"{self.endpoint} answered without choices[0].message.content") from err
        if not isinstance(content, str):
            raise LLMCaptionError(f"{self.endpoint} answered with non-text content ({type(content).__name__})")
        return content

