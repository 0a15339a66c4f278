"""Speaker-disjoint splits: seeded fractions (:func:`speaker_disjoint_split`) or a fixed
speaker assignment (:func:`split_by_speakers`, e.g. RAVDESS's actors 01-16 / 17-19 / 20-24).
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np

from emorank.data.manifest import SPLITS, Manifest, ManifestError, normalise_split

# ----------------------------------------------------------------------------------------------------------------
# Speaker-disjoint splits


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(~np.isfinite(f)) or np.any(f < 0) or abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers (train, dev, test) summing to 1, "
                         f"got {tuple(fractions)}")
    return f


def _groups_to_assign(m: Manifest, rows: np.ndarray) -> dict[str, list[int]]:
    """Rows grouped by speaker; rows without a speaker form one group each (utterance level)."""
    groups: dict[str, list[int]] = {}
    for i in rows:
        key = f"spk:{m.speaker[i]}" if m.speaker[i] else f"row:{m.path[i]}"
        groups.setdefault(key, []).append(int(i))
    return groups


def _fill_splits(groups: Iterable[list[int]], targets: np.ndarray, seed: int) -> dict[int, str]:
    """Greedy: each group (in a seeded random order) goes to the split furthest below its target share.

    "Furthest below" = the smallest ratio filled/target, so every split with a non-zero fraction receives a
    group before any split receives a second one.
    """
    groups = sorted(groups, key=lambda g: min(g))  # canonical order before shuffling: deterministic for a seed
    order = np.random.default_rng(seed).permutation(len(groups))
    filled = np.zeros(3)
    out: dict[int, str] = {}
    active = np.flatnonzero(targets > 0)
    for gi in order:
        ratios = filled[active] / targets[active]
        best = active[np.lexsort((np.arange(active.size), -targets[active], ratios))[0]]
        filled[best] += len(groups[gi])
        for row in groups[gi]:
            out[row] = SPLITS[best]
    return out


def speaker_disjoint_split(manifest: Manifest, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, *,
                           overwrite: bool = False) -> Manifest:
    """Assign train/dev/test so that no speaker appears in two splits; deterministic for a ``seed``.

    Rows that already have a split keep it unless ``overwrite``; unassigned rows of a speaker who already has a
    split join that split (its most common one). Remaining speakers are shuffled with ``seed`` and each goes to the
    split furthest below its target share of the utterances being assigned (smallest filled/target ratio, so each
    split with a non-zero fraction gets a speaker while speakers last; shares are met up to speaker sizes). Rows
    without a speaker are split at utterance level, with a warning. Returns a new manifest.
    """
    targets = _check_fractions(fractions)
    n = len(manifest)
    split = ["" for _ in range(n)] if overwrite else list(manifest.split)
    todo = np.array([i for i in range(n) if not split[i]], dtype=np.int64)
    if todo.size == 0:
        return manifest.subset(slice(None))
    known: dict[str, Counter] = {}
    for i in range(n):
        if split[i] and manifest.speaker[i]:
            known.setdefault(manifest.speaker[i], Counter())[split[i]] += 1
    fresh = []
    for i in todo:
        spk = manifest.speaker[i]
        if spk in known:
            split[i] = known[spk].most_common(1)[0][0]
        else:
            fresh.append(i)
    n_anon = sum(1 for i in fresh if not manifest.speaker[i])
    if n_anon:
        warnings.warn(f"{n_anon} of {n} rows have no speaker id; they are split at utterance level, so the "
                      "splits are not guaranteed speaker-disjoint", stacklevel=2)
    groups = _groups_to_assign(manifest, np.asarray(fresh, dtype=np.int64))
    for row, name in _fill_splits(groups.values(), targets * len(fresh), seed).items():
        split[row] = name
    out = manifest.subset(slice(None))
    out.split = split
    return out


def split_by_speakers(manifest: Manifest, assignment: Mapping[str, Iterable[str]], *,
                      overwrite: bool = True) -> Manifest:
    """Assign splits from a fixed speaker list: ``{"train": [...], "dev": [...], "test": [...]}``.

    Rows of a listed speaker take that speaker's split (with ``overwrite=False`` only rows without a split do);
    rows of unlisted speakers keep their split (``""`` when none). Split names accept the usual aliases. A speaker
    listed under two splits, or an unknown split name, raises :class:`ManifestError`. Returns a new manifest.
    """
    owner: dict[str, str] = {}
    for name, speakers in assignment.items():
        key = normalise_split(name)
        if key not in SPLITS:
            raise ManifestError(f"unknown split {name!r} in the speaker assignment; valid: {', '.join(SPLITS)}")
        for spk in speakers:
            spk = str(spk).strip()
            if owner.get(spk, key) != key:
                raise ManifestError(f"speaker {spk!r} is assigned to both {owner[spk]!r} and {key!r}")
            owner[spk] = key
    out = manifest.subset(slice(None))
    out.split = [owner.get(spk, old) if (overwrite or not old) else old
                 for spk, old in zip(manifest.speaker, manifest.split)]
    return out
