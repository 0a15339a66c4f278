"""The Embedding-space tab: 2-D maps of both modalities for one or two checkpoints, the modality gap
(``/embedding_map``).
"""
from __future__ import annotations

import logging

import gradio as gr
import numpy as np
from emorank.app.bounds import DEMO_TEST, MAP_POINTS, WorkspaceError, choice, whole

from emorank.app.bounds import MAP_COLOURS, MAP_METHODS, NONE
from emorank.app.errors import friendly
from emorank.app.serving import _progress_fn, _slug

log = logging.getLogger(__name__)


class EmbeddingHandlers:
    """Embedding-tab handlers (mixed into :class:`~emorank.app.handlers.Handlers`)."""

    # ----------------------------------------------------------------------------- embedding space
    def _map(self, checkpoint: str, collection: str, method: str, max_points: int, progress=None):
        """(EmbeddingMap, audio labels, text labels, audio names, text names, audio emb, text emb)."""
        from emorank.evaluation.evaluate import pair_captions
        from emorank.evaluation.maps import embedding_map
        from emorank.search.retrieval import text_embeddings

        method = choice(method, "method", MAP_METHODS)
        max_points = whole(max_points, "max_points", *MAP_POINTS)
        index = self.ws.index(checkpoint, collection, progress=_progress_fn(progress, "audio features"))
        rows = np.arange(len(index))
        if len(rows) > max_points:
            rows = np.sort(np.random.default_rng(0).choice(len(rows), size=int(max_points), replace=False))
        audio = index.audio_emb[rows]  # [N, D]
        va_audio, _ = self.ws.va_of(index, rows)
        if self.ws.source(collection).labelled:
            part = index.manifest.subset(rows)
            captions = pair_captions(index.model, part, self.ws.cache, False)
            text, va_text = text_embeddings(index.model, captions, self.ws.cache), va_audio
        else:  # no labels, no paired captions: show the V-A caption grid instead
            from emorank.captions.va import va_caption
            grid, text = self.ws.grid(checkpoint)
            captions, va_text = [va_caption(v, a) for v, a in grid], grid
        emap = embedding_map(audio, text, method=method, cache_dir=self.maps_dir)
        names = [index.manifest.ids[i] for i in rows]
        return emap, va_audio, va_text, names, captions, audio, text

    def api_embedding_map(self, checkpoint: str, collection: str = DEMO_TEST, method: str = "pca",
                          max_points: int = 600) -> dict:
        """2-D map (PCA or UMAP) of a checkpoint's audio and caption embeddings, with the modality-gap numbers.

        Args:
            checkpoint: a checkpoint name (see the checkpoints tool), e.g. emotionrankclap.
            collection: a collection name (see the collections tool).
            method: pca (fast) or umap (slow on first use).
            max_points: clips drawn, at most (10 to 2000).
        """
        emap, la, lt, na, nt, _, _ = friendly(self._map)(checkpoint, collection, method, max_points)

        def rows(coords, labels, names, key):
            return [{key: n, "x": round(float(x), 5), "y": round(float(y), 5), "valence": round(float(v), 3),
                     "arousal": round(float(a), 3)} for (x, y), (v, a), n in zip(coords, labels, names)]
        return {"checkpoint": checkpoint, "collection": collection, "method": emap.method, "gap": emap.gap,
                "audio": rows(emap.coords_audio, la, na, "clip"), "text": rows(emap.coords_text, lt, nt, "caption")}

    @friendly
    def embedding(self, ckpt_a: str, ckpt_b: str, collection: str, method: str, colour: str, max_points: int,
                  progress=gr.Progress()):
        """(figure, gap table, downloadable files) for one checkpoint or two side by side."""
        from emorank.evaluation.figures import (
            embedding_figure,
            save_figure,
            side_by_side,
        )
        from emorank.evaluation.maps import save_embeddings

        names = [c for c in (ckpt_a, ckpt_b) if c and c != NONE]
        if not names:
            raise WorkspaceError("choose a checkpoint")
        names = [self.ws.checkpoint_path(c) and c for c in names]
        method, colour = choice(method, "method", MAP_METHODS), choice(colour, "colour", MAP_COLOURS)
        max_points = whole(max_points, "clips (at most)", *MAP_POINTS)
        figs, gaps, files = [], [], []
        out = self._new_output("map-")
        for i, name in enumerate(dict.fromkeys(names)):
            progress(i / len(names), desc=f"{method.upper()} of {name}")
            emap, la, lt, na, nt, audio, text_ = self._map(name, collection, method, max_points, progress)
            figs.append(embedding_figure(emap, colour, la, lt, hover_audio=na, hover_text=nt, title=name,
                                         ids_audio=na))
            gaps.append([name, *(round(float(emap.gap[key]), 4) for key in ("mmd", "wasserstein", "centroid_distance")),
                         emap.gap["n_audio"]])
            files += save_embeddings(out / f"embeddings-{_slug(name)}", audio, text_,
                                     {"checkpoint": name, "collection": collection}, emb_map=emap,
                                     labels_audio=la, labels_text=lt, names_audio=na, names_text=nt)
        fig = side_by_side(figs, titles=list(dict.fromkeys(names))) if len(figs) > 1 else figs[0]
        files.insert(0, save_figure(fig, out / "embedding-map.html"))
        return fig, gaps, [str(f) for f in files]

    def redraw(self, drawn: bool, ckpt_a: str, ckpt_b: str, collection: str, method: str, colour: str,
               max_points: int, progress=gr.Progress()):
        """A map setting changed: draw again when a map is on screen (nothing otherwise)."""
        if not drawn:
            return gr.skip(), gr.skip(), gr.skip()
        return self.embedding(ckpt_a, ckpt_b, collection, method, colour, max_points, progress)
