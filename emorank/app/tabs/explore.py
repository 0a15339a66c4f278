"""The Explore tab: caption or V-A point -> clips, the V-A plane and its clicks, the ordinal strip, side by side
with a second checkpoint, and the ``/retrieve`` endpoint.
"""
from __future__ import annotations

import logging

import gradio as gr
import numpy as np
from emorank.app.bounds import DEMO_TEST, MAX_NAME_CHARS, STRIP_VALUES, VA_RANGE, WorkspaceError, number, text, whole

from emorank.app.bounds import MAX_K, NONE
from emorank.app.errors import friendly
from emorank.app.formatting import (
    _click_payload,
    _hit_label,
    _hit_table,
    _share_link,
    _tau_reference,
)
from emorank.app.serving import _player, _progress_fn

log = logging.getLogger(__name__)


class ExploreHandlers:
    """Explore-tab handlers (mixed into :class:`~emorank.app.handlers.Handlers`)."""

    @friendly
    def caption(self, valence: float = 6.0, arousal: float = 2.0) -> str:
        """The speaking-style caption of a point on the valence-arousal plane (the wording retrieval uses).

        Args:
            valence: 1 (very negative) to 7 (very positive).
            arousal: 1 (very calm) to 7 (very active).
        """
        return self.ws.caption(valence, arousal)

    def _search(self, checkpoint: str, collection: str, query: str, k: int, progress=None, point=None):
        if not checkpoint:
            raise WorkspaceError("no checkpoint is available yet: train one in the Train tab")
        return self.ws.search(checkpoint, collection, query, k, progress=_progress_fn(progress, "audio features"),
                              point=point)

    def _point(self, query: str, valence, arousal) -> tuple[float, float] | None:
        """The sliders' point when the query is their caption (not free text)."""
        return (float(valence), float(arousal)) if query.strip() == self.caption(valence, arousal) else None

    @friendly
    def explore(self, checkpoint: str, collection: str, query: str, valence: float, arousal: float, k: int,
                progress=gr.Progress()):
        """Caption -> top-k clips: (table, V-A plane, *MAX_K players, explanation with a link to this query)."""
        from emorank.evaluation.figures import va_plane_figure

        k, query = whole(k, "the number of clips", 1, MAX_K), text(query, "the query caption")
        point = self._point(query, valence, arousal)
        index, records = self._search(checkpoint, collection, query, k, progress, point)
        where = point or self.ws.query_point(index, query)
        fit = None if point else self.ws.text_typicality(checkpoint, index, query)
        fig = va_plane_figure(np.array([[r["valence"], r["arousal"]] for r in records]), query=where,
                              labels=[r["id"] for r in records], clickable=True,
                              title="Query (star) and its clips · click to query a point" if point else
                              "Free text (star: where the caption reads) · click to query a point")
        players = [_player(r["file"], _hit_label(r), self.served) for r in records[:MAX_K]]
        players += [_player(None, "", self.served)] * (MAX_K - len(players))
        return (_hit_table(records), fig, *players, self._explain(checkpoint, records, where, point, query, fit))

    def _explain(self, checkpoint, records, where, point, query, fit=None) -> str:
        dists = [r["distance"] for r in records if r.get("distance") is not None]
        reads = "" if point else f"The caption reads as valence {where[0]:.1f}, arousal {where[1]:.1f} under this checkpoint. "
        if fit is not None and not fit.typical:
            reads = (f"⚠️ The caption reads as valence {where[0]:.1f}, arousal {where[1]:.1f}, but this text is far "
                     f"from the captions the heads learnt (similarity {fit.score:.2f} to the nearest template "
                     f"caption; 95% of template phrasings reach {fit.threshold:.2f}), so that point is a guess: "
                     f"phrase it like the examples (\"The person is speaking in a sad, calm way.\"). ")
        mean = (f"Δ is each clip's distance from the query on the 1-7 plane (labels); mean Δ {np.mean(dists):.2f}"
                f"{' (clip V-A estimated: no labels)' if records and records[0]['labels'] == 'estimated' else ''}. "
                if dists else "")
        return f"{reads}{mean}[Link to this query]({_share_link(checkpoint, where, None if point else query)})"

    @friendly
    def slide(self, checkpoint: str, collection: str, valence: float, arousal: float, k: int,
              progress=gr.Progress()):
        """A slider move: (caption, *explore outputs) in one round trip."""
        caption = self.caption(valence, arousal)
        return (caption, *self.explore(checkpoint, collection, caption, valence, arousal, k, progress))

    @friendly
    def compare(self, checkpoint_b: str, collection: str, query: str, valence: float, arousal: float, k: int):
        """The same query answered by a second checkpoint: (table, summary) for the side-by-side panel."""
        if not checkpoint_b or checkpoint_b == NONE:
            return [], "Choose a second checkpoint to compare its answers with the first one's."
        k, query = whole(k, "the number of clips", 1, MAX_K), text(query, "the query caption")
        point = self._point(query, valence, arousal)
        index, records = self._search(checkpoint_b, collection, query, k, None, point)
        where = point or self.ws.query_point(index, query)
        for r in records:  # one yardstick for both columns: the distance from the first checkpoint's star
            r["distance"] = round(float(np.hypot(r["valence"] - where[0], r["arousal"] - where[1])), 2)
        table = [[r["rank"], r["id"], r["valence"], r["arousal"], r["distance"], r["similarity"]] for r in records]
        mean = np.mean([r["distance"] for r in records]) if records else float("nan")
        return table, f"**{checkpoint_b}**: mean Δ {mean:.2f} from the query (lower is closer)."

    @friendly
    def strip(self, checkpoint: str, collection: str, axis: str, fixed: float):
        """The ordinal-neighbours row: one clip per step along `axis` (note, *len(STRIP_VALUES) players)."""
        _, records = self.ws.neighbours(checkpoint, collection, axis, fixed)
        other = "arousal" if axis == "valence" else "valence"
        players = [_player(r["file"], f"{q:.0f} → {r[axis]:.1f}", self.served)
                   for q, r in zip(STRIP_VALUES, records)]
        players += [_player(None, "", self.served)] * (len(STRIP_VALUES) - len(players))
        tau = self.ws.row_tau(records, axis)
        score = ("" if tau is None else
                 f"**Kendall τ = {tau:.2f}** for this row (1: the clips rise in the captions' order, 0: no order; "
                 f"{_tau_reference(self.ws, checkpoint, axis)}). ")
        note = (f"{score}Captions along **{axis}** 1 → 7 with {other} held at {fixed:g}, one clip each. Player "
                f"label: caption level → the clip's {'estimated ' if records and records[0]['labels'] == 'estimated' else ''}"
                f"{axis}.")
        return (note, *players)

    # ----------------------------------------------------------------------------- clicks on plots
    @friendly
    def plane_click(self, collection: str, payload: str):
        """A click on the V-A plane (JSON from the page's script): a clip plays it, elsewhere queries the point:
        (valence, arousal, clicked player)."""
        data = _click_payload(payload)
        if data.get("clip"):
            return gr.skip(), gr.skip(), self._clip_player(collection, data["clip"])
        v, a = (round(number(data.get(key), key, *VA_RANGE) * 2) / 2 for key in ("valence", "arousal"))
        return v, a, gr.skip()

    @friendly
    def map_click(self, collection: str, payload: str):
        """A click on a clip in the embedding map: its player."""
        data = _click_payload(payload)
        if not data.get("clip"):
            return gr.skip()
        return self._clip_player(collection, data["clip"])

    def _clip_player(self, collection: str | None, clip: str):
        source = self.ws.source(collection or DEMO_TEST)
        clip = text(clip, "the clip", MAX_NAME_CHARS)
        ids = source.manifest.ids
        if clip not in ids:
            raise WorkspaceError("that clip is not in the chosen collection; draw the map again")
        return _player(source.manifest.path[ids.index(clip)], f"clicked: {clip}"[:40], self.served)

    def api_retrieve(self, checkpoint: str = "emotionrankclap", collection: str = DEMO_TEST,
                     query: str = "", valence: float | None = None, arousal: float | None = None, k: int = 5) -> dict:
        """The emotional-speech clips of a collection that best match a speaking-style caption, or the caption of
        a point on the valence-arousal plane. Free text also gets "text_typicality": how close it is to the template
        captions the checkpoint learnt ("typical": false means the model is guessing).

        Args:
            checkpoint: a checkpoint name (see the checkpoints endpoint), e.g. emotionrankclap.
            collection: a collection name (see the collections endpoint).
            query: an English speaking-style caption; leave empty to query the (valence, arousal) point instead.
            valence: 1 (very negative) to 7 (very positive); used when query is empty.
            arousal: 1 (very calm) to 7 (very active); used when query is empty.
            k: how many clips to return (1 to 50).
        """
        return friendly(self._retrieve)(checkpoint, collection, query, valence, arousal, k)

    def _retrieve(self, checkpoint, collection, query, valence, arousal, k) -> dict:
        query = text(query, "the query caption", required=False)
        free = bool(query)
        if not query:
            if valence is None or arousal is None:
                raise WorkspaceError("give a query caption, or both valence and arousal")
            query = self.caption(valence, arousal)
        index, records = self._search(checkpoint, collection, query, k)
        out = {"caption": query, "checkpoint": checkpoint, "collection": collection,
               "hits": [self._public(r) for r in records]}
        if free:  # how close free text is to the template captions (typical False: its V-A reading is a guess)
            out["text_typicality"] = self.ws.text_typicality(checkpoint, index, query).to_dict()
        return out

    def _public(self, record: dict) -> dict:
        """A hit for the JSON API: the server's absolute "file" replaced by "url", an opaque link relative to the
        app (`serving.ClipLinks`: "/gradio_api/emorank-clip/<token>.wav") when the server serves the clip."""
        out = {k: v for k, v in record.items() if k != "file"}
        url = self.links.url(record["file"])
        if url is not None:
            out["url"] = url
        return out

    # ----------------------------------------------------------------------------- analyse
