"""What the workspace says about one voice clip or one free-text query: the clip's valence-arousal estimate, its
nearest captions and its nearest clips in a collection of the checkpoint's own corpus (`neighbour_collection`),
and whether the estimate can be trusted (`emorank.search.typicality`). :class:`AnalysisMixin` gives the
:class:`~emorank.app.workspace.Workspace` these methods.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from emorank.app.bounds import ANALYSE_MAX_SECONDS, ANALYSE_MIN_SECONDS, MAX_ANALYSE_HITS, confine, whole
from emorank.app.inputs import local_clip

log = logging.getLogger(__name__)

MATCHING = "the checkpoint's own corpus"  # analyse: nearest clips from a collection of the checkpoint's corpus


class AnalysisMixin:
    """Clip and text analysis (used through :class:`~emorank.app.workspace.Workspace`)."""

    def neighbour_collection(self, checkpoint: str, collection: str | None = MATCHING) -> tuple[str | None, str]:
        """Where a checkpoint's nearest clips come from: (collection name or None, a note for people).

        `MATCHING` (the default) picks a collection of the corpus the checkpoint was trained on (its config's
        dataset: "demo" for the synthetic corpus, "ravdess", ...): a real voice is compared with the speech the
        checkpoint understands, never with synthetic clips because they happen to be loaded. None when no such
        collection is loaded (the note says what to add). A named collection is used as asked; the note says when
        its corpus is not the checkpoint's."""
        from emorank.app.collections import corpus_title

        corpus = self.checkpoint_corpus(checkpoint)
        sources = self.collections()
        if collection is None or collection == "":
            return None, ""
        if collection == MATCHING:
            same = [name for name, s in sources.items() if s.corpus == corpus]
            if same:
                return same[0], (f"Nearest clips from **{same[0]}**: {corpus_title(corpus)} speech, the corpus "
                                 f"`{checkpoint}` was trained on.")
            return None, (f"No nearest clips: no collection of {corpus_title(corpus)} speech (what `{checkpoint}` "
                          f"was trained on) is loaded, and clips of another corpus would not be comparable. Add a "
                          f"{corpus_title(corpus)} folder under 'Add a collection', or pick a collection.")
        source = self.source(collection)
        if source.corpus == corpus:
            return collection, f"Nearest clips from **{collection}** ({corpus_title(corpus)} speech)."
        what = f"{corpus_title(source.corpus)} speech" if source.corpus else "clips of an unknown corpus"
        return collection, (f"Nearest clips from **{collection}**, {what}, as you chose; `{checkpoint}` was trained "
                            f"on {corpus_title(corpus)} speech, so neighbours and distances across the two mean "
                            f"little.")

    def analyse(self, clip, checkpoint: str, collection: str | None = MATCHING, k: int = 5) -> dict:
        """A clip (an uploaded file's path, a FileData dict, base64 data or an http(s) URL: see
        `emorank.app.inputs.local_clip`): its V-A estimate, nearest V-A captions and nearest clips of a collection (see
        `neighbour_collection`; None: no clips), each clip with its "distance" from the estimate on the 1..7
        plane. "collection" and "neighbours" in the result say where the clips came from.

        Raises emorank.data.audio.AudioError (a ValueError naming the file) for unreadable, silent, too short or too
        long audio (limit ANALYSE_MAX_SECONDS)."""
        from emorank.captions.va import va_caption
        from emorank.data.audio import TARGET_SR, load_audio
        from emorank.metrics.va import va_from_similarity
        from emorank.search.retrieval import VA_TEMPERATURE
        from emorank.search.typicality import clip_features

        k = whole(k, "k (clips to return)", 1, MAX_ANALYSE_HITS)
        roots = [*self.upload_roots, *self.local_roots, *self.allowed_roots(), os.path.realpath(self.clips_dir)]
        with local_clip(clip, self.clips_dir, private_urls=self.private_urls) as path:
            path = confine(path, roots, "audio file")
            wav = load_audio(path, max_seconds=ANALYSE_MAX_SECONDS, min_seconds=ANALYSE_MIN_SECONDS)  # [T] 16 kHz
        chosen, note = self.neighbour_collection(checkpoint, collection)  # after the clip: its problems come first
        index = self.index(checkpoint, chosen) if chosen is not None else None
        model = index.model if index is not None else self.model(checkpoint)
        raw = model.audio_encoder.encode([wav])  # [1, Da]
        emb = model.embed_audio_features(raw, None)  # [1, D]: global normalisation (one clip, no speaker)
        reference = self.audio_reference(checkpoint)
        fit = reference.judge(clip_features(model, raw)[0]) if reference is not None else None
        grid, grid_emb = self.grid(checkpoint)
        sims = grid_emb @ emb[0]  # [G]
        va = va_from_similarity(sims[None], grid, VA_TEMPERATURE)[0]  # [2], as Collection.estimate_va
        top = np.argsort(-sims, kind="stable")[:k]
        captions = [{"caption": va_caption(*grid[i]), "valence": float(grid[i, 0]), "arousal": float(grid[i, 1]),
                     "similarity": round(float(sims[i]), 4)} for i in top]
        clips = [] if index is None else self.hit_records(index, index.search_embedding(emb[0], k), point=va)
        return {"valence": round(float(va[0]), 3), "arousal": round(float(va[1]), 3),
                "seconds": round(len(wav) / TARGET_SR, 2), "captions": captions, "clips": clips,
                "checkpoint": checkpoint, "collection": chosen, "neighbours": note,
                "typicality": fit.to_dict() if fit is not None else None,
                "trusted": None if fit is None else fit.typical}

    def audio_reference(self, checkpoint: str):
        """The checkpoint's clip typicality reference (`emorank.search.typicality`): the one stored beside it, else
        one computed (once) from a loaded collection of its corpus with dev and test rows; None when neither
        exists (the estimate's typicality cannot be judged then)."""
        from emorank.encoders.cache import FeatureCache
        from emorank.search.typicality import AudioReference, audio_reference

        key = self._model_key(checkpoint)
        with self._lock:
            if key in self._audio_refs:
                return self._audio_refs[key]
        reference = AudioReference.load(self.checkpoint_path(checkpoint))
        corpus = self.checkpoint_corpus(checkpoint)
        for source in ([] if reference is not None else
                       [s for s in self.collections().values() if s.corpus == corpus]):
            counts = source.manifest.split_counts()
            if counts.get("dev", 0) > 5 and counts.get("test", 0) > 5:
                with FeatureCache(self.assets.cache_path) as private:
                    reference = audio_reference(self.model(checkpoint), source.manifest, private, corpus=corpus)
                break
        with self._lock:
            self._remember(self._audio_refs, key, reference)
        return reference

    def text_typicality(self, checkpoint: str, index, query: str):
        """How close a free-text query is to the template captions the checkpoint's estimates rest on
        (`emorank.search.typicality`): a Typicality whose `typical` is False when the text is less like them than
        95% of held-out template phrasings, so where it reads on the plane is a guess."""
        from emorank.search.typicality import judge_text, text_reference

        key = self._model_key(checkpoint)
        grid_emb = self.grid(checkpoint)[1]
        with self._lock:
            reference = self._text_refs.get(key)
        if reference is None:
            reference = text_reference(self.model(checkpoint), grid_emb, cache=self.cache)
            with self._lock:
                self._remember(self._text_refs, key, reference)
        return judge_text(index.queries.embed([query])[0], grid_emb, reference)
