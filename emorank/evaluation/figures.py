"""Figures: the embedding map and the V-A plane as interactive plotly figures, ordinality and training curves,
side-by-side panels, and the same as static PNGs (matplotlib, Agg). plotly and matplotlib are imported inside the
functions that need them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from emorank.evaluation.maps import (
    COLOR_MODES,
    LABEL_RANGE,
    MODALITY_COLORS,
    VA_COLORSCALES,
    EmbeddingMap,
    VizInputError,
    _as_labels,
    _as_strings,
    _atomic_path,
)

# ----------------------------------------------------------------------------------------------------------------
# interactive figures (plotly)


def _gap_text(emap: EmbeddingMap) -> str:
    g = emap.gap
    head = f"{emap.method.upper()} of both modalities"
    if not g:
        return head
    return (f"{head} · gap: MMD² {g['mmd']:.3f} · Wasserstein {g['wasserstein']:.3f} · "
            f"centroid distance {g['centroid_distance']:.3f}")


def _hover(prefix: str, names: list[str] | None, labels: np.ndarray | None, n: int) -> list[str]:
    """Per point: the given name (or '<prefix> i') plus its V-A labels when known."""
    out = []
    for i in range(n):
        text = names[i] if names is not None else f"{prefix} {i}"
        if labels is not None and np.all(np.isfinite(labels[i])):
            text += f"<br>valence {labels[i, 0]:.2f} · arousal {labels[i, 1]:.2f}"
        out.append(text)
    return out


def _modality_traces(go, coords: np.ndarray, modality: str, color_by: str, labels: np.ndarray | None,
                     hover: list[str]) -> list:
    """Scatter trace(s) of one modality: audio circles or text diamonds, coloured by modality or by a label.

    Points without a finite label on the coloured axis go to a second, grey trace "<modality> (no labels)".
    """
    marker = {"symbol": "circle" if modality == "audio" else "diamond", "size": 7 if modality == "audio" else 8,
              "opacity": 0.8, "line": {"width": 0.5, "color": "white" if modality == "audio" else "black"}}
    hover = np.asarray(hover, dtype=object)

    def trace(mask: np.ndarray, name: str, color) -> object:
        return go.Scatter(x=coords[mask, 0], y=coords[mask, 1], mode="markers", name=name, legendgroup=modality,
                          marker={**marker, **color}, text=list(hover[mask]),
                          hovertemplate="%{text}<extra>" + modality + "</extra>")

    everything = np.ones(coords.shape[0], dtype=bool)
    if color_by == "modality":
        return [trace(everything, modality, {"color": MODALITY_COLORS[modality]})]
    values = labels[:, 0 if color_by == "valence" else 1] if labels is not None else np.full(coords.shape[0], np.nan)
    known = np.isfinite(values)
    traces = []
    if known.any():
        traces.append(trace(known, modality, {"color": values[known], "coloraxis": "coloraxis"}))
    if not known.all():
        traces.append(trace(~known, f"{modality} (no labels)", {"color": "lightgrey"}))
    return traces


def embedding_figure(emap: EmbeddingMap, color_by: str = "modality", labels_audio: np.ndarray | None = None,
                     labels_text: np.ndarray | None = None, hover_audio: list[str] | None = None,
                     hover_text: list[str] | None = None, title: str | None = None,
                     ids_audio: list[str] | None = None):
    """Scatter plot of an :class:`EmbeddingMap`: audio as circles, text as diamonds (two traces).
    `ids_audio` [N] become the audio points' customdata (a click handler can tell which clip was clicked).

    ``color_by``: "modality" (two fixed colours) or "valence" / "arousal" (labels [N, 2] / [M, 2] on 1..7, one
    colour axis shared by both traces; points without labels are drawn grey in their own trace). The subtitle
    carries the gap numbers.
    """
    import plotly.graph_objects as go

    if color_by not in COLOR_MODES:
        raise VizInputError(f"unknown color_by {color_by!r}; valid: {list(COLOR_MODES)}")
    n, m = emap.coords_audio.shape[0], emap.coords_text.shape[0]
    la = _as_labels(labels_audio, n, "labels_audio")
    lt = _as_labels(labels_text, m, "labels_text")
    if color_by != "modality" and la is None:
        raise VizInputError(f"color_by={color_by!r} needs labels_audio [N, 2] (valence, arousal)")
    ha = _hover("audio", _as_strings(hover_audio, n, "hover_audio"), la, n)
    ht = _hover("text", _as_strings(hover_text, m, "hover_text"), lt, m)
    audio_traces = _modality_traces(go, emap.coords_audio, "audio", color_by, la, ha)
    if ids_audio is not None:  # what a click on a clip reports (the app plays that clip)
        for trace in audio_traces:
            trace.customdata = _as_strings(ids_audio, n, "ids_audio")
    fig = go.Figure(audio_traces + _modality_traces(go, emap.coords_text, "text", color_by, lt, ht))
    fig.update_layout(title={"text": title or "Embedding space", "subtitle": {"text": _gap_text(emap)}},
                      xaxis_title=f"{emap.method} 1", yaxis_title=f"{emap.method} 2", template="plotly_white",
                      legend={"orientation": "h", "y": -0.15}, margin={"t": 80})
    if color_by != "modality":
        fig.update_layout(coloraxis={"colorscale": VA_COLORSCALES[color_by][0], "cmin": LABEL_RANGE[0],
                                     "cmax": LABEL_RANGE[1], "colorbar": {"title": {"text": color_by}}})
    return fig


def side_by_side(items: Sequence, titles: Sequence[str] | None = None, **figure_kwargs):
    """Several embedding maps (EmbeddingMaps or figures from :func:`embedding_figure`) as one row of subplots.

    Typical use: EmotionRankCLAP next to CLAP-SCE. ``figure_kwargs`` go to :func:`embedding_figure` for the
    items that are maps (color_by, labels, hovers). Legend entries and the colour axis are shared.
    """
    from plotly.subplots import make_subplots

    items = list(items)
    if not items:
        raise VizInputError("side_by_side needs at least one map or figure")
    titles = list(titles) if titles is not None else [f"model {i + 1}" for i in range(len(items))]
    if len(titles) != len(items):
        raise VizInputError(f"got {len(titles)} titles for {len(items)} maps")
    figs, subtitles = [], []
    for item in items:
        if isinstance(item, EmbeddingMap):
            figs.append(embedding_figure(item, **figure_kwargs))
            subtitles.append(_gap_text(item))
        else:
            figs.append(item)
            subtitles.append(item.layout.title.subtitle.text or "")
    out = make_subplots(rows=1, cols=len(figs), horizontal_spacing=0.06,
                        subplot_titles=[f"{t}<br><sub>{s}</sub>" for t, s in zip(titles, subtitles)])
    for col, fig in enumerate(figs, start=1):
        for trace in fig.data:
            trace.showlegend = col == 1
            out.add_trace(trace, row=1, col=col)
    out.update_layout(template="plotly_white", legend={"orientation": "h", "y": -0.12}, margin={"t": 90})
    if figs[0].layout.coloraxis.colorscale is not None:
        out.update_layout(coloraxis=figs[0].layout.coloraxis)
    return out


def va_plane_figure(points: np.ndarray, query: tuple[float, float] | None = None,
                    labels: list[str] | None = None, title: str | None = None, clickable: bool = False):
    """The valence-arousal plane (1..7 x 1..7) with retrieved clips [K, 2] (numbered by rank) and the query star.

    Dashed guide lines at the neutral point 4 split the quadrants. The clips' customdata are their `labels`; with
    `clickable`, a faint grid of points every 0.5, the sliders' step (trace "pick", customdata [valence, arousal])
    lets a click anywhere on the plane report a point.
    """
    import plotly.graph_objects as go

    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) if np.size(points) else np.zeros((0, 2))
    names = _as_strings(labels, pts.shape[0], "labels") or [f"clip {i + 1}" for i in range(pts.shape[0])]
    hover = [f"{name}<br>valence {v:.2f} · arousal {a:.2f}" for name, (v, a) in zip(names, pts)]
    fig = go.Figure(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers+text", name="retrieved",
                               text=[str(i + 1) for i in range(pts.shape[0])], textposition="top center",
                               hovertext=hover, hoverinfo="text", customdata=names,
                               marker={"size": 10, "color": MODALITY_COLORS["audio"], "opacity": 0.85}))
    if clickable:
        ticks = np.arange(LABEL_RANGE[0], LABEL_RANGE[1] + 1e-9, 0.5)
        gv, ga = (g.ravel() for g in np.meshgrid(ticks, ticks))  # [P] each
        fig.add_trace(go.Scatter(x=gv, y=ga, mode="markers", name="pick", showlegend=False,
                                 customdata=np.stack([gv, ga], axis=1), hoverinfo="text",
                                 hovertext=[f"click: query valence {v:g} · arousal {a:g}" for v, a in zip(gv, ga)],
                                 marker={"size": 24, "color": "rgba(0,0,0,0.01)"}))
        fig.data = fig.data[::-1]  # the pick grid under the clips: a click on a clip reports the clip
    if query is not None:
        v, a = (float(q) for q in query)
        fig.add_trace(go.Scatter(x=[v], y=[a], mode="markers", name="query",
                                 hovertext=[f"query<br>valence {v:.2f} · arousal {a:.2f}"], hoverinfo="text",
                                 marker={"symbol": "star", "size": 18, "color": "gold",
                                         "line": {"width": 1, "color": "black"}}))
    mid = sum(LABEL_RANGE) / 2
    for kind in ("x", "y"):
        line = {"type": "line", "line": {"dash": "dash", "color": "grey", "width": 1}}
        ends = {"x0": mid, "x1": mid, "y0": LABEL_RANGE[0], "y1": LABEL_RANGE[1]} if kind == "x" else \
            {"y0": mid, "y1": mid, "x0": LABEL_RANGE[0], "x1": LABEL_RANGE[1]}
        fig.add_shape(**line, **ends)
    span = [LABEL_RANGE[0] - 0.2, LABEL_RANGE[1] + 0.2]
    fig.update_layout(title=title or "Valence-arousal plane", template="plotly_white", height=380,
                      xaxis={"title": "valence", "range": span, "dtick": 1, "constrain": "domain"},
                      yaxis={"title": "arousal", "range": span, "dtick": 1, "scaleanchor": "x"},
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 50})
    return fig


def _check_ordinality(results: dict) -> list[str]:
    """System names of an ordinality result dict; every entry needs aoc/voc with mean and std."""
    if not results:
        raise VizInputError("ordinality results are empty: need {system: {'aoc': {...}, 'voc': {...}}}")
    for name, res in results.items():
        for key in ("aoc", "voc"):
            if key not in res or "mean" not in res[key] or "std" not in res[key]:
                raise VizInputError(f"ordinality results for system {name!r} need {key!r} with 'mean' and 'std'")
    return list(results)


def _jitter(n: int, seed: int, width: float = 0.12) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-width, width, size=n)


def ordinality_figure(results: dict, title: str | None = None):
    """Grouped bars (mean +- std) of AOC and VOC per system, plus each list's Kendall tau as a point."""
    import plotly.graph_objects as go

    systems = _check_ordinality(results)
    fig = go.Figure()
    for offset, key, color in ((-0.2, "aoc", "#4c72b0"), (0.2, "voc", "#dd8452")):
        x = np.arange(len(systems)) + offset
        fig.add_trace(go.Bar(x=x, y=[results[s][key]["mean"] for s in systems], width=0.38, name=key.upper(),
                             marker_color=color, opacity=0.75, legendgroup=key,
                             error_y={"type": "data", "array": [results[s][key]["std"] for s in systems]},
                             hovertext=systems,
                             hovertemplate="%{hovertext}: %{y:.3f}<extra>" + key.upper() + "</extra>"))
        px, py, names = [], [], []
        for i, s in enumerate(systems):
            values = list(results[s][key].get("values") or [])
            px.extend(i + offset + _jitter(len(values), seed=i))
            py.extend(values)
            names.extend([s] * len(values))
        fig.add_trace(go.Scatter(x=px, y=py, mode="markers", name=f"{key.upper()} per list", legendgroup=key,
                                 marker={"size": 4, "color": color, "line": {"width": 0.5, "color": "black"}},
                                 hovertext=names, hovertemplate="%{hovertext}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title or "Cross-modal emotion ordinality (Kendall tau)", template="plotly_white",
                      xaxis={"tickvals": list(range(len(systems))), "ticktext": systems},
                      yaxis={"title": "Kendall tau", "zeroline": True}, bargap=0.2)
    return fig


def _history_arrays(history: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch, train_loss, val_loss) arrays from train history records; a missing val_loss becomes NaN.

    The trainer numbers its records from 0; figures count epochs from 1, as the app's status and the CLI do."""
    if not history:
        raise VizInputError("training history is empty: need records with epoch, train_loss, val_loss")
    for i, rec in enumerate(history):
        for key in ("epoch", "train_loss"):
            if key not in rec:
                raise VizInputError(f"training history record {i} has no {key!r}: {sorted(rec)}")
    epoch = np.array([r["epoch"] for r in history], dtype=np.float64) + 1.0
    train = np.array([r["train_loss"] for r in history], dtype=np.float64)
    val = np.array([np.nan if r.get("val_loss") is None else r["val_loss"] for r in history], dtype=np.float64)
    return epoch, train, val


def training_curve_figure(history: list[dict], title: str | None = None):
    """Train and validation loss per epoch, with the best (lowest validation loss) epoch starred."""
    import plotly.graph_objects as go

    epoch, train, val = _history_arrays(history)
    fig = go.Figure([go.Scatter(x=epoch, y=train, mode="lines+markers", name="train loss"),
                     go.Scatter(x=epoch, y=val, mode="lines+markers", name="validation loss")])
    if np.any(np.isfinite(val)):
        best = int(np.nanargmin(val))
        fig.add_trace(go.Scatter(x=[epoch[best]], y=[val[best]], mode="markers", name="best epoch",
                                 marker={"symbol": "star", "size": 14, "color": "gold",
                                         "line": {"width": 1, "color": "black"}}))
    fig.update_layout(title=title or "Training curve", template="plotly_white", xaxis_title="epoch",
                      yaxis_title="loss")
    return fig


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a plotly figure atomically: ``.html`` (self-contained, plotly.js embedded: works offline) or
    ``.json`` (plotly JSON). PNGs come from the matplotlib twins (:func:`embedding_figure_png`,
    :func:`ordinality_figure_png`, :func:`training_curve_png`): plotly's PNG export needs kaleido and a browser.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".html", ".json"):
        raise VizInputError(f"save_figure writes .html or .json, not {target.name!r}; for PNG use "
                            "embedding_figure_png / ordinality_figure_png / training_curve_png")
    with _atomic_path(target) as tmp:
        if suffix == ".html":
            fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)
        else:
            tmp.write_text(fig.to_json())
    return target


# ----------------------------------------------------------------------------------------------------------------
# static PNGs (matplotlib through the Agg canvas; pyplot and its global backend are never used)


def _mpl_figure(size: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | os.PathLike) -> Path:
    target = Path(path)
    with _atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return target


def embedding_figure_png(emap: EmbeddingMap, path: str | os.PathLike, color_by: str = "modality",
                         labels_audio: np.ndarray | None = None, labels_text: np.ndarray | None = None,
                         title: str | None = None) -> Path:
    """The PNG twin of :func:`embedding_figure` (same markers, colours and subtitle); returns the path."""
    if color_by not in COLOR_MODES:
        raise VizInputError(f"unknown color_by {color_by!r}; valid: {list(COLOR_MODES)}")
    la = _as_labels(labels_audio, emap.coords_audio.shape[0], "labels_audio")
    lt = _as_labels(labels_text, emap.coords_text.shape[0], "labels_text")
    if color_by != "modality" and la is None:
        raise VizInputError(f"color_by={color_by!r} needs labels_audio [N, 2] (valence, arousal)")
    fig = _mpl_figure((7.0, 6.0))
    ax = fig.add_subplot()
    mappable = None
    for modality, coords, labels, marker in (("audio", emap.coords_audio, la, "o"),
                                             ("text", emap.coords_text, lt, "D")):
        style = {"marker": marker, "s": 14 if modality == "audio" else 18, "alpha": 0.8,
                 "edgecolors": "white" if modality == "audio" else "black", "linewidths": 0.3, "label": modality}
        if color_by == "modality":
            ax.scatter(coords[:, 0], coords[:, 1], c=MODALITY_COLORS[modality], **style)
            continue
        values = labels[:, 0 if color_by == "valence" else 1] if labels is not None else np.full(len(coords), np.nan)
        known = np.isfinite(values)
        if known.any():
            mappable = ax.scatter(coords[known, 0], coords[known, 1], c=values[known],
                                  cmap=VA_COLORSCALES[color_by][1], vmin=LABEL_RANGE[0], vmax=LABEL_RANGE[1],
                                  **style)
        if not known.all():
            ax.scatter(coords[~known, 0], coords[~known, 1], c="lightgrey",
                       **{**style, "label": f"{modality} (no labels)"})
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label=color_by)
    ax.set_title(f"{title or 'Embedding space'}\n{_gap_text(emap)}", fontsize=9)
    ax.set_xlabel(f"{emap.method} 1")
    ax.set_ylabel(f"{emap.method} 2")
    ax.legend(loc="best", fontsize=8)
    return _save_png(fig, path)


def ordinality_figure_png(results: dict, path: str | os.PathLike, title: str | None = None) -> Path:
    """The PNG twin of :func:`ordinality_figure`: AOC/VOC bars (mean +- std) and per-list points."""
    systems = _check_ordinality(results)
    fig = _mpl_figure((max(5.0, 1.3 * len(systems) + 2.0), 4.5))
    ax = fig.add_subplot()
    for offset, key, color in ((-0.2, "aoc", "#4c72b0"), (0.2, "voc", "#dd8452")):
        x = np.arange(len(systems)) + offset
        ax.bar(x, [results[s][key]["mean"] for s in systems], width=0.38, color=color, alpha=0.75,
               yerr=[results[s][key]["std"] for s in systems], capsize=3, label=key.upper())
        for i, s in enumerate(systems):
            values = np.asarray(results[s][key].get("values") or [], dtype=np.float64)
            ax.scatter(i + offset + _jitter(values.size, seed=i), values, s=6, color=color, edgecolors="black",
                       linewidths=0.3, zorder=3)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(systems)), systems, rotation=20, ha="right")
    ax.set_ylabel("Kendall tau")
    ax.set_title(title or "Cross-modal emotion ordinality (Kendall tau)", fontsize=10)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def training_curve_png(history: list[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """The PNG twin of :func:`training_curve_figure`."""
    epoch, train, val = _history_arrays(history)
    fig = _mpl_figure((6.0, 4.0))
    ax = fig.add_subplot()
    ax.plot(epoch, train, marker="o", label="train loss")
    ax.plot(epoch, val, marker="o", label="validation loss")
    if np.any(np.isfinite(val)):
        best = int(np.nanargmin(val))
        ax.scatter([epoch[best]], [val[best]], marker="*", s=160, color="gold", edgecolors="black", zorder=3,
                   label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "Training curve", fontsize=10)
    ax.legend(fontsize=8)
    return _save_png(fig, path)
