"""The Analyse tab: a visitor's clip -> its valence-arousal estimate and nearest clips (``/analyse``,
``/estimate_va``).
"""
from __future__ import annotations

import logging

import gradio as gr
import numpy as np

from emorank.app.bounds import ANALYSE_K
from emorank.app.errors import friendly
from emorank.app.formatting import _hit_label, _hit_table
from emorank.app.serving import _player
from emorank.app.analysis import MATCHING

log = logging.getLogger(__name__)


class AnalyseHandlers:
    """Analyse-tab handlers (mixed into :class:`~emorank.app.handlers.Handlers`)."""

    @friendly
    def api_analyse(self, audio: str, checkpoint: str = "emotionrankclap", collection: str = MATCHING,
                    k: int = ANALYSE_K) -> dict:
        """Analyse a voice clip: its estimated valence and arousal (1..7), the nearest speaking-style captions and
        the nearest clips of a collection.

        Args:
            audio: a speech clip (0.3-30 s, at most 12 MB): its http(s) URL, or data:audio/wav;base64,... data.
            checkpoint: a checkpoint name; one trained on real speech (e.g. emotionrankclap-plus-ravdess) for people.
            collection: the collection to find similar clips in; by default one of the corpus the checkpoint was
                trained on (none when no such collection is loaded: "neighbours" then says so).
            k: how many captions and clips to return (1 to 20).
        """
        res = self._analyse(audio, checkpoint, collection, k)
        return {**res, "clips": [self._public(c) for c in res["clips"]]}

    def _analyse(self, audio, checkpoint, collection, k) -> dict:
        if not audio:
            raise gr.Error("upload or record a clip first", print_exception=False)
        if self._first_use(checkpoint):
            gr.Info("Loading this checkpoint's audio encoder for its first analysis (Whisper: about 10 s, once per "
                    "server start); the result follows.")
        return self.ws.analyse(audio, checkpoint, collection, k)

    def _first_use(self, checkpoint) -> bool:
        """Whether this analysis has to load the checkpoint's audio encoder first (a bad name: not our concern
        here, `ws.analyse` says what is wrong with it)."""
        try:
            return not self.ws.audio_encoder_ready(checkpoint)
        except Exception:  # noqa: BLE001
            return False

    @friendly
    def analyse(self, audio: str | None, checkpoint: str, collection: str):
        """(summary, V-A plane, captions table, clips table, *ANALYSE_K players)."""
        from emorank.evaluation.figures import va_plane_figure

        res = self._analyse(audio, checkpoint, collection, ANALYSE_K)
        clips = res["clips"]
        fig = va_plane_figure(np.array([[c["valence"], c["arousal"]] for c in clips]).reshape(-1, 2),
                              query=(res["valence"], res["arousal"]), labels=[c["id"] for c in clips],
                              title="Your clip (star) and its nearest clips")
        corpus, real = self.ws.trained_on(checkpoint)
        summary = (f"**Estimated valence {res['valence']:.2f}, arousal {res['arousal']:.2f}** (1..7, from the clip's "
                   f"embedding under `{checkpoint}`, trained on {corpus}; {res['seconds']:.1f} s analysed)."
                   + ("" if real else " This checkpoint never heard a real voice: choose one trained on real speech "
                      "for people's recordings.") + "\n\n"
                   f"{_trust(res, checkpoint)}\n\nClosest caption: *{res['captions'][0]['caption']}*  \n"
                   f"{res['neighbours']}")
        captions = [[c["caption"], c["valence"], c["arousal"], c["similarity"]] for c in res["captions"]]
        players = [_player(c["file"], _hit_label(c), self.served) for c in clips]
        players += [_player(None, "", self.served)] * (ANALYSE_K - len(players))
        return (summary, fig, captions, _hit_table(clips), *players)

    @friendly
    def estimate_va(self, audio: str, checkpoint: str = "emotionrankclap") -> dict:
        """Estimate where a voice clip sits on the valence-arousal plane.

        Args:
            audio: a speech clip (0.3-30 s, at most 12 MB): its http(s) URL, or data:audio/wav;base64,... data.
            checkpoint: a checkpoint name; one trained on real speech (e.g. emotionrankclap-plus-ravdess) for people.

        Returns:
            {"valence": 1..7, "arousal": 1..7, "caption": the closest speaking-style caption, "trained_on": ...,
             "trusted": false when the clip lies farther from the checkpoint's training speech than 95% of its own
             test clips (the estimate is then an extrapolation; null when this cannot be judged), "typicality": ...}
        """
        res = self._analyse(audio, checkpoint, None, 1)  # no neighbours: only the estimate
        return {"valence": res["valence"], "arousal": res["arousal"], "caption": res["captions"][0]["caption"],
                "checkpoint": checkpoint, "trained_on": self.ws.trained_on(checkpoint)[0],
                "trusted": res["trusted"], "typicality": res["typicality"]}


def _trust(res: dict, checkpoint: str) -> str:
    """Whether the estimate can be trusted: how far the clip lies from the checkpoint's training speech, against
    the checkpoint's own test clips (`emorank.search.typicality`)."""
    fit = res.get("typicality")
    if fit is None:
        return (f"How typical this clip is of the speech `{checkpoint}` learnt cannot be judged here (no reference "
                f"clips of its corpus).")
    if not fit["typical"]:
        return (f"⚠️ **Do not trust this estimate**: the clip lies farther from the speech `{checkpoint}` learnt "
                f"than {100 - fit['percentile']:.0f}% of the checkpoint's own test clips (distance "
                f"{fit['score']:.1f}; 95% of them lie within {fit['threshold']:.1f}), so the point is an "
                f"extrapolation.")
    return (f"The clip is within the speech `{checkpoint}` learnt: {fit['percentile']:.0f}% of its own test clips "
            f"lie at least as far from it (distance {fit['score']:.1f}; flagged beyond {fit['threshold']:.1f}).")
