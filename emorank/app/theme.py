"""The app's look: theme, CSS (wide and phone widths) and the small script in the page head.
"""
from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger(__name__)


def player(label: str, kind: str) -> gr.Audio:
    """A compact output player (the browser's own controls), hidden until it has a clip."""
    return gr.Audio(label=label, interactive=False, visible=False, elem_classes=kind, min_width=150,
                    buttons=["download"], waveform_options=gr.WaveformOptions(show_recording_waveform=False))


def theme_and_css() -> tuple[gr.themes.Base, str]:
    """The app's look (passed to launch(): Gradio 6 takes theme and css there)."""
    return gr.themes.Soft(primary_hue="indigo"), CSS


# Labels wrap instead of being cut; tab names stay whole (tabs that do not fit go to Gradio's "more tabs" menu);
# players share a row and wrap as whole cards; wide tables scroll inside their panel and break lines between words
# only (the evaluation tables); the hidden boxes that carry plot clicks take no room.
CSS = """
#train-status code {letter-spacing: -1px}
.emorank-hidden {display: none !important}
label span, .label-wrap span, [data-testid="block-info"] {white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; overflow-wrap: anywhere}
button, .label-wrap {white-space: normal !important; overflow-wrap: anywhere; height: auto; min-width: 0}
[role="tablist"] button, .tab-container button {white-space: nowrap !important; overflow-wrap: normal !important;
  min-width: max-content}
.label-wrap {display: flex !important; gap: 4px; box-sizing: border-box}
.label-wrap > span:first-child {min-width: 0; flex: 1 1 0; text-align: left}
.label-wrap > .icon {flex: 0 0 auto; margin: 0 4px 0 0 !important; display: inline-block; width: 14px; height: 14px;
  line-height: 14px; text-align: center; transform-origin: 50% 50%}
#hit-players, #strip-players {flex-wrap: wrap !important; gap: 8px}
#hit-players > *, #strip-players > * {flex: 1 1 150px !important; min-width: 150px !important}
.table-wrap, .table-container {overflow-x: auto !important; max-width: 100%}
.wrap .secondary-wrap input, .dropdown input {text-overflow: ellipsis; padding-right: 24px !important}
#eval-table table {font-size: 13px}
#eval-table th, #eval-table td, #eval-table span {word-break: normal !important; overflow-wrap: normal !important}
#eval-paper table {display: block; overflow-x: auto; max-width: 100%; font-size: 13px}
#eval-paper th, #eval-paper td {word-break: normal !important; overflow-wrap: normal !important; hyphens: none;
  min-width: 3.2em; padding: 4px 6px}
@media (max-width: 640px) {
  .gradio-container {padding: 4px !important}
  #hit-players > *, #strip-players > * {flex: 1 1 45% !important; min-width: 45% !important}
}
"""

# Plotly clicks on the V-A plane and the embedding map -> a hidden textbox per plot -> a server handler.
HEAD = """<script>
(() => {
  const targets = [["va-plane", "plane-click"], ["embedding-plot", "map-click"]];
  function send(boxId, payload) {
    const box = document.querySelector(`#${boxId} textarea, #${boxId} input`);
    if (!box) return;
    const proto = box.tagName === "TEXTAREA" ? HTMLTextAreaElement.prototype : HTMLInputElement.prototype;
    Object.getOwnPropertyDescriptor(proto, "value").set.call(box, JSON.stringify({...payload, at: Date.now()}));
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }
  function bind() {
    for (const [plotId, boxId] of targets) {
      document.querySelectorAll(`#${plotId} .js-plotly-plot`).forEach((gd) => {
        if (gd.__emorankBound || !gd.on) return;
        gd.__emorankBound = true;
        gd.on("plotly_click", (event) => {
          const pt = event && event.points && event.points[0];
          if (!pt) return;
          if (pt.data && pt.data.name === "pick") send(boxId, {valence: pt.customdata[0], arousal: pt.customdata[1]});
          else if (typeof pt.customdata === "string") send(boxId, {clip: pt.customdata});
        });
      });
    }
  }
  setInterval(bind, 400);
})();
</script>"""
