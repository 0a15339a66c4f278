"""Library results -> what widgets show: hit tables, share links, evaluation tables in Markdown, training status
and curves, and the example captions and voices the app offers.
"""
from __future__ import annotations

import json
import logging

from emorank.app.bounds import REPO_DIR, WorkspaceError
from emorank.app.workspace import Workspace

log = logging.getLogger(__name__)


def _hit_label(rec: dict) -> str:
    """A player's label: short enough for a 150 px card (rank, V-A, distance from the query)."""
    est = "≈" if rec["labels"] == "estimated" else ""
    dist = f" · Δ{rec['distance']:.1f}" if rec.get("distance") is not None else ""
    return f"#{rec['rank']} V{est}{rec['valence']:.1f} A{est}{rec['arousal']:.1f}{dist}"


def _hit_table(records: list[dict]) -> list[list]:
    return [[r["rank"], r["id"], r["valence"], r["arousal"], r.get("distance"), r["labels"], r["emotion"] or "",
             r["similarity"]] for r in records]


HIT_HEADERS = ["rank", "clip", "valence", "arousal", "distance", "labels", "emotion", "similarity"]
COMPARE_HEADERS = ["rank", "clip", "valence", "arousal", "distance", "similarity"]


# ------------------------------------------------------------------------------------------- formatting
def _share_link(checkpoint: str, point, caption: str | None) -> str:
    """A relative link that reopens the page on this query (read by `Handlers.from_url`)."""
    from urllib.parse import urlencode

    params = {"checkpoint": checkpoint}
    params.update({"caption": caption} if caption else {"valence": f"{point[0]:g}", "arousal": f"{point[1]:g}"})
    return "?" + urlencode(params)


def _tau_reference(ws: Workspace, checkpoint: str, axis: str) -> str:
    """What a row's tau compares with: the checkpoint's mean over the paper's 100 lists (its eval.json)."""
    try:
        report = json.loads((ws.checkpoint_path(checkpoint) / "eval.json").read_text())
        mean = report["ordinality"]["aoc" if axis == "arousal" else "voc"]["mean"]
        return f"this checkpoint averages {mean:.2f} over the test lists"
    except (OSError, ValueError, KeyError, TypeError, WorkspaceError):
        return "one row is a small sample: the Evaluate tab averages 100 lists"


def _click_payload(payload) -> dict:
    """The page script's JSON {"clip": id} or {"valence": v, "arousal": a} (bounded, never trusted)."""
    if not isinstance(payload, str) or len(payload) > 1000:
        raise WorkspaceError("that click could not be read; click the point again")
    try:
        data = json.loads(payload)
    except ValueError:
        raise WorkspaceError("that click could not be read; click the point again") from None
    if not isinstance(data, dict):
        raise WorkspaceError("that click could not be read; click the point again")
    return data


REPORT_HEADERS = ["checkpoint", "system", "MMD ↓", "Wasserstein ↓", "AOC ↑", "VOC ↑", "R@1 a→t", "R@5 a→t",
                  "R@10 a→t", "CCC valence", "CCC arousal"]
# Fixed widths (px) that fit a 1400 px window whole and scroll, word by word intact, on a phone: names break after
# their hyphens, "0.128 ± 0.009" at its spaces, headers between words.
REPORT_WIDTHS = ["160px", "150px", "116px", "116px", "116px", "116px", "66px", "66px", "66px", "78px", "78px"]


def _report_row(name: str, r: dict) -> list:
    ms = lambda d: f"{d['mean']:.3f} ± {d['std']:.3f}"  # noqa: E731
    a, o, ret, va = r["alignment"], r["ordinality"], r["retrieval"], r["va_estimation"]
    return [name, r["meta"].get("system") or "?", ms(a["mmd"]), ms(a["wasserstein"]), ms(o["aoc"]), ms(o["voc"]),
            *(round(ret.get(k, float("nan")), 3) for k in ("a2t_r@1", "a2t_r@5", "a2t_r@10")),
            round(va["ccc_valence"], 3), round(va["ccc_arousal"], 3)]


def _paper_tables(reports: dict) -> str:
    """The paper's Tables 1-2 with significance (emorank.compare) when each checkpoint is a different system."""
    from emorank.evaluation.compare import markdown, summarise

    systems = [r["meta"].get("system") for r in reports.values()]
    if len(reports) < 2:
        return "Evaluate two or more checkpoints to compare them in the paper's tables (with significance)."
    if None in systems or len(set(systems)) != len(systems):
        return ("The paper-style tables compare systems: the chosen checkpoints repeat a system "
                f"({', '.join(map(str, systems))}), so only the per-checkpoint table above is shown.")
    return markdown(summarise({s: [r] for s, r in zip(systems, reports.values())}))


def _status_markdown(s) -> str:
    bar = "█" * int(round(20 * s.fraction)) + "░" * (20 - int(round(20 * s.fraction)))
    return f"**{s.state}** `{bar}` {100 * s.fraction:.0f}%  \n{s.summary()}"


def _curve(s):
    """Per-epoch train/validation loss (viz) plus the per-step loss, or None before the first step."""
    from emorank.evaluation.figures import training_curve_figure

    if not s.history and not s.losses:
        return None
    if s.history:
        fig = training_curve_figure(s.history, title=f"{s.name}: loss")
    else:
        import plotly.graph_objects as go
        fig = go.Figure().update_layout(title=f"{s.name}: loss", template="plotly_white", xaxis_title="epoch",
                                        yaxis_title="loss")
    if s.losses:
        x, y = zip(*s.losses)  # x: epochs completed; viz numbers an epoch's record by its 0-based index
        fig.add_scatter(x=[v - 1 for v in x], y=y, mode="lines", name="step loss", opacity=0.35)
    return fig


EXAMPLE_MAX_DELTA = 2.5
"""Every clip of an offered example's top 5 (the free text, and the slider caption at the point it means) lies
within this distance of that point on the 1..7 plane, with the shipped `emotionrankclap` on the demo test split
(our bar for an example: a random pick of 5 test clips rarely meets it; tests/app/test_app.py computes it)."""


def example_captions() -> list[str]:
    """Free-text queries shipped in assets/example_captions.txt (empty when the file is missing)."""
    return [caption for caption, _ in example_caption_points()]


def example_caption_points() -> list[tuple[str, tuple[float, float] | None]]:
    """The shipped free-text queries with the (valence, arousal) each one means, from lines
    `caption | valence, arousal` (None for a line without a point)."""
    path = REPO_DIR / "assets" / "example_captions.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    out = []
    for line in (ln.strip() for ln in lines):
        if not line or line.startswith("#"):
            continue
        caption, _, point = (part.strip() for part in line.partition("|"))
        out.append((caption, tuple(float(x) for x in point.split(",")) if point else None))
    return out


def example_voices() -> list[str]:
    """Short voice clips shipped in assets/voices (synthetic, made with the project's eSpeak corpus code)."""
    folder = REPO_DIR / "assets" / "voices"
    return sorted(str(p) for p in folder.glob("*.wav")) if folder.is_dir() else []
