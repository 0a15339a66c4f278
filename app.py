"""emorank demo app: explore, analyse, map, train and evaluate EmotionRankCLAP-style checkpoints.

    python app.py                 # the page answers at once; a first start builds the demo corpus in the background
    python app.py --mcp           # also an MCP server (tools: caption, retrieve, analyse, estimate_va,
                                  # embedding_map, evaluate, checkpoints, collections), or EMORANK_MCP=1
    python app.py --port 7861 --data /path/to/data
    python app.py --host 0.0.0.0  # reachable from the network: collections from server paths are then refused

Collections from server paths ("Add a collection") are accepted only when the app listens on loopback
(127.0.0.1, the default), or with --allow-local-paths (optionally confined with --local-root DIR).

Layout and wiring only: the handlers live in emorank/ui.py, the work in the emorank library.
"""
from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

import gradio as gr

from emorank.app.bounds import (ANALYSE_K, ANALYSE_MAX_SECONDS, DEMO_ALL, DEMO_TEST, MAX_K, MAX_SESSIONS, NONE,
                                STRIP_VALUES, local_paths_policy)
from emorank.app.build import demo_clip_folder, plan_demo
from emorank.app.formatting import (COMPARE_HEADERS, EXAMPLE_MAX_DELTA, HIT_HEADERS, REPORT_HEADERS, REPORT_WIDTHS,
                                    example_captions, example_voices)
from emorank.app.handlers import Handlers
from emorank.app.jobs import TrainingJobs
from emorank.app.serving import gpu
from emorank.app.theme import player
from emorank.app.analysis import MATCHING
from emorank.app.workspace import Workspace
from emorank.training.systems import SYSTEMS

TITLE = "emorank · EmotionRankCLAP"
INTRO = """# emorank · EmotionRankCLAP demo
Speech and speaking-style captions in one embedding space, ordered by valence (negative → positive) and arousal
(calm → active). The demo corpus is **synthetic** (eSpeak NG voices with prosody set from target valence-arousal),
so the app runs anywhere offline; add your own corpus as a collection."""
UPLOAD_LIMIT = "20mb"
# Concurrency. Searches are read-only, take about a millisecond of numpy (query embeddings are cached in memory) and
# are thread-safe, so they run without a cap: a visitor never waits behind another's search, and no event waits in
# Gradio's queue (whose scheduler re-polls every millisecond while any event waits behind a full group). Each
# visitor's own slider events stay in order through trigger_mode="always_last" (one in flight per event, the
# latest value sent next). Expensive requests (uploads analysed, maps, evaluation) share one small group.
SEARCH = dict(concurrency_id="search", concurrency_limit=None)
HEAVY = dict(concurrency_id="heavy", concurrency_limit=2)


def tool(fn, name: str):
    """`fn` under the name an MCP client sees (Gradio names a tool after its function), with its signature and
    docstring (the tool's schema and description)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def explore_tab(h: Handlers, ckpt, coll) -> tuple[list, list, list, list, list, list]:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            valence = gr.Slider(1, 7, 4, step=0.5, label="Valence", info="1 very negative … 7 very positive",
                                elem_id="valence")
            arousal = gr.Slider(1, 7, 4, step=0.5, label="Arousal", info="1 very calm … 7 very active",
                                elem_id="arousal")
            caption = gr.Textbox(h.caption(4, 4), lines=1, max_lines=6, label="Caption (edit freely; Enter searches)",
                                 elem_id="caption")
            with gr.Row():
                k = gr.Slider(1, MAX_K, 5, step=1, label="Clips", scale=3, min_width=160)
                search = gr.Button("Search", variant="primary", scale=1, min_width=90)
            shipped, examples = example_captions(), None
            if shipped:
                with gr.Accordion("Free-text examples", open=False, elem_id="examples"):
                    examples = gr.Examples([[c] for c in shipped], inputs=[caption],
                                           label=f"Click one to search (with the defaults, its five clips lie "
                                                 f"within Δ {EXAMPLE_MAX_DELTA:g} of what it means)",
                                           example_labels=[c.replace("The person is speaking", "…", 1)
                                                           for c in shipped])
        with gr.Column(scale=1, min_width=300):
            plane = gr.Plot(label="Valence-arousal plane (click to query a point, or a clip to hear it)",
                            elem_id="va-plane")
            explain = gr.Markdown(elem_id="explain")
            clicked = player("clicked clip", "clicked")
    with gr.Row(elem_id="hit-players", equal_height=True):
        players = [player(f"#{i + 1}", "hit") for i in range(MAX_K)]
    table = gr.Dataframe(headers=HIT_HEADERS, label="Retrieved clips (Δ: distance from the query on the 1-7 plane)",
                         interactive=False, elem_id="hits", wrap=True)
    with gr.Accordion("Side by side: the same query answered by a second checkpoint", open=True,
                      elem_id="compare"):
        with gr.Row():
            ckpt_b = gr.Dropdown([(NONE, NONE)] + h.checkpoint_choices(), value=h.second_checkpoint(),
                                 label="Compare with", elem_id="compare-checkpoint", scale=1, min_width=320)
            compare_note = gr.Markdown(elem_id="compare-note")
        compare = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, elem_id="compare-hits", wrap=True,
                               label="Its clips for the same query")
    with gr.Accordion("Ordinal neighbours: hear the ordering (the paper's Figure 3)", open=True):
        with gr.Row():
            axis = gr.Radio(["valence", "arousal"], value="arousal", label="Along", scale=1, min_width=160)
            fixed = gr.Slider(1, 7, 4, step=0.5, label="Other axis held at", scale=2, min_width=200)
            go = gr.Button("Retrieve the row", scale=1, min_width=120)
        note = gr.Markdown(elem_id="strip-note")
        with gr.Row(elem_id="strip-players", equal_height=True):
            strip = [player(f"{v:g}", "strip") for v in STRIP_VALUES]
    click = gr.Textbox(elem_id="plane-click", elem_classes="emorank-hidden", container=False, show_label=False)

    search_in, search_out = [ckpt, coll, caption, valence, arousal, k], [table, plane, *players, explain]
    compare_in = [ckpt_b, coll, caption, valence, arousal, k]
    # One queue for every search, in submission order, so the last query's results are the ones left on screen.
    serial = dict(**SEARCH, show_progress="minimal", trigger_mode="always_last")
    quiet = dict(**SEARCH, show_progress="hidden", trigger_mode="always_last", api_visibility="private")
    slid = gr.on([valence.change, arousal.change], h.slide, [ckpt, coll, valence, arousal, k],
                 [caption, *search_out], api_name="slide", api_visibility="undocumented", **serial)
    slid.then(h.compare, compare_in, [compare, compare_note], **quiet)
    searched = gr.on([caption.submit, search.click, k.change, ckpt.change, coll.change], h.explore, search_in,
                     search_out, api_name="explore", api_visibility="undocumented", **serial)
    searched.then(h.compare, compare_in, [compare, compare_note], **quiet)
    ckpt_b.change(h.compare, compare_in, [compare, compare_note], **quiet)
    if examples is not None:
        examples.load_input_event.then(h.explore, search_in, search_out, api_visibility="private", **serial).then(
            h.compare, compare_in, [compare, compare_note], **quiet)
    click.change(h.plane_click, [coll, click], [valence, arousal, clicked], **quiet)
    gr.on([go.click, axis.change, fixed.change, ckpt.change, coll.change], h.strip, [ckpt, coll, axis, fixed],
          [note, *strip], api_name="strip", api_visibility="undocumented", show_progress="minimal",
          trigger_mode="always_last", **SEARCH)
    return search_in, search_out, [ckpt, coll, axis, fixed], [note, *strip], compare_in, [compare, compare_note], \
        [valence, arousal, caption], ckpt_b


def analyse_tab(h: Handlers):
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            ckpt = gr.Dropdown(h.checkpoint_choices(), value=h.voice_checkpoint(), label="Checkpoint for voices",
                               elem_id="analyse-checkpoint")
            near = gr.Dropdown(h.neighbour_choices(), value=MATCHING, label="Nearest clips from",
                               elem_id="analyse-collection")
            card = gr.Markdown(h.card(h.voice_checkpoint()), elem_id="analyse-card")
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="analyse-audio",
                             label=f"A voice clip (upload or record, up to {ANALYSE_MAX_SECONDS:.0f} s)")
            voices = example_voices()
            if voices:
                gr.Examples([[v] for v in voices], inputs=[audio], label="Example voices (synthetic, shipped)",
                            example_labels=[Path(v).stem.replace("-", " ") for v in voices])
            run = gr.Button("Analyse", variant="primary")
            summary = gr.Markdown(elem_id="analyse-summary")
        plane = gr.Plot(label="Where it falls on the valence-arousal plane")
    captions = gr.Dataframe(headers=["nearest captions", "valence", "arousal", "similarity"], interactive=False,
                            wrap=True)
    table = gr.Dataframe(headers=HIT_HEADERS, label="Nearest clips (Δ: distance from your clip's estimate)",
                         interactive=False, wrap=True, elem_id="analyse-hits")
    with gr.Row(equal_height=True):
        players = [player(f"#{i + 1}", "neighbour") for i in range(ANALYSE_K)]
    ckpt.change(h.card, ckpt, card, api_visibility="private", show_progress="hidden", concurrency_limit=None)
    gr.on([audio.upload, audio.stop_recording, run.click], h.analyse, [audio, ckpt, near],
          [summary, plane, captions, table, *players], api_name="analyse_view", api_visibility="private",
          show_progress_on=[summary], **HEAVY)
    return ckpt, near


def embedding_tab(h: Handlers, coll):
    with gr.Row():
        a = gr.Dropdown(h.checkpoint_choices(), value=h.default_checkpoint(), label="Checkpoint", min_width=220)
        b = gr.Dropdown([(NONE, NONE)] + h.checkpoint_choices(), value=h.second_checkpoint(), label="Side by side with",
                        min_width=220)
        method = gr.Radio([("UMAP", "umap"), ("PCA (fast)", "pca")], value="umap", label="Projection", min_width=160)
        colour = gr.Radio(["modality", "valence", "arousal"], value="modality", label="Colour by", min_width=220)
        points = gr.Slider(50, 2000, 600, step=50, label="Clips (at most)", min_width=200)
    draw = gr.Button("Draw the embedding space", variant="primary")
    plot = gr.Plot(label="Audio (circles) and captions (diamonds); click a circle to hear its clip",
                   elem_id="embedding-plot")
    clicked = player("clicked clip", "map-clicked")
    gaps = gr.Dataframe(headers=["checkpoint", "MMD²", "Wasserstein", "centroid distance", "clips"],
                        label="Modality gap (in the embedding space, not the 2-D map)", interactive=False)
    files = gr.File(label="Downloads: figure (HTML) and embeddings (NPZ + CSV of the map)", file_count="multiple")
    click = gr.Textbox(elem_id="map-click", elem_classes="emorank-hidden", container=False, show_label=False)
    drawn = gr.State(False)  # redraw on a setting change only once a map is on screen
    gr.on([draw.click], h.embedding, [a, b, coll, method, colour, points], [plot, gaps, files],
          api_visibility="private", show_progress_on=[plot], **HEAVY).then(lambda: True, None, drawn,
                                                                            api_visibility="private")
    gr.on([method.change, colour.change, a.change, b.change], h.redraw, [drawn, a, b, coll, method, colour, points],
          [plot, gaps, files], api_visibility="private", show_progress_on=[plot], trigger_mode="always_last", **HEAVY)
    click.change(h.map_click, [coll, click], clicked, api_visibility="private", show_progress="hidden",
                 concurrency_limit=None)
    return a, b


def train_tab(h: Handlers):
    with gr.Row():
        coll = gr.Dropdown(h.collection_choices(labelled_only=True), value=DEMO_ALL, label="Training collection",
                           info="needs train and dev splits", min_width=220)
        system = gr.Dropdown([(f"{s.title} ({n})", n) for n, s in SYSTEMS.items()], value="emotionrankclap",
                             label="System (captions + loss)", min_width=220)
        name = gr.Textbox(label="Run name (optional)", placeholder="e.g. erc-lr1e-3", min_width=200)
    epochs0, lr0, budget_note = h.budget(False)
    with gr.Row():
        paper = gr.Checkbox(False, label="Paper budget", info="exactly these epochs at lr 1e-4", min_width=160)
        epochs = gr.Slider(1, 100, epochs0, step=1, label="Epochs (at least)", min_width=200)
        batch = gr.Slider(8, 512, 64, step=8, label="Batch size", min_width=200)
        lr = gr.Number(lr0, label="Learning rate", min_width=120)
        seed = gr.Number(0, precision=0, label="Seed", min_width=100)
    note = gr.Markdown(budget_note)
    with gr.Row():
        start = gr.Button("Train", variant="primary")
        stop = gr.Button("Stop (keeps the best checkpoint so far)", variant="stop")
    status = gr.Markdown(h.jobs.status().summary(), elem_id="train-status")
    curve = gr.Plot(label="Loss", elem_id="train-curve")
    paper.change(h.budget, paper, [epochs, lr, note], api_visibility="private", show_progress="hidden",
                 concurrency_limit=None)
    follow = dict(fn=h.follow_training, inputs=None, outputs=[status, curve], show_progress="hidden",
                  api_visibility="private", concurrency_limit=None)
    started = start.click(h.start_training, [coll, system, epochs, batch, lr, seed, name, paper], status,
                          api_visibility="private", concurrency_limit=None)
    stop.click(h.stop_button, None, status, api_visibility="private", concurrency_limit=None,
               show_progress="hidden")
    return started.then(**follow), follow, coll


def evaluate_tab(h: Handlers):
    with gr.Row():
        chosen = gr.Dropdown(h.checkpoint_choices(), value=[c for c in (h.default_checkpoint(), h.second_checkpoint())
                                                            if c and c != NONE],
                             multiselect=True, label="Checkpoints (one, or several to compare)", min_width=300)
        coll = gr.Dropdown(h.collection_choices(labelled_only=True), value=DEMO_TEST, label="Collection",
                           min_width=220)
        split = gr.Dropdown(["test", "dev", "train"], value="test", label="Split", min_width=120)
    with gr.Row():
        trials = gr.Slider(2, 30, 30, step=1, label="Alignment trials (paper: 30)", min_width=200, elem_id="eval-trials")
        lists = gr.Slider(10, 100, 100, step=10, label="Ordinality lists per axis (paper: 100)", min_width=200,
                          elem_id="eval-lists")
        run = gr.Button("Run the paper's tests", variant="primary", min_width=160)
    table = gr.Dataframe(headers=REPORT_HEADERS, label="Results (mean ± std)", interactive=False, wrap=True,
                         elem_id="eval-table", max_height=400, column_widths=REPORT_WIDTHS)
    with gr.Accordion("Significance between systems (the paper's Tables 1-2)", open=False):
        paper = gr.Markdown(elem_id="eval-paper")
    plot = gr.Plot(label="Cross-modal ordinality")
    download = gr.File(label="Full report (JSON)")
    run.click(h.evaluate, [chosen, coll, split, trials, lists], [table, paper, plot, download],
              api_name="evaluate_view", api_visibility="private", show_progress_on=[table], **HEAVY)
    return chosen, coll


def build_app(h: Handlers) -> gr.Blocks:
    """The Blocks of the demo (not launched)."""
    # delete_cache: Gradio's copies of uploads and downloads older than an hour are removed every half hour.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        banner = gr.Markdown(h.build_status(), visible=bool(h.build_status()), elem_id="build-status")
        with gr.Row():
            ckpt = gr.Dropdown(h.checkpoint_choices(), value=h.default_checkpoint(), label="Checkpoint (system)",
                               elem_id="checkpoint", scale=3, min_width=260)
            coll = gr.Dropdown(h.collection_choices(), value=DEMO_TEST, label="Collection", elem_id="collection",
                               scale=3, min_width=220)
            refresh = gr.Button("⟳ Refresh lists", size="sm", scale=1, min_width=120)
        with gr.Accordion("About this checkpoint (model card)", open=False, elem_id="card-panel"):
            card = gr.Markdown(h.card(h.default_checkpoint()), elem_id="card")
        hint = ("a Hugging Face dataset id (owner/name)" if not h.ws.allow_local_paths else
                "a manifest CSV, a folder of audio, a Hugging Face dataset folder or id (owner/name)")
        with gr.Accordion("Add a collection", open=False,
                          visible=h.ws.allow_local_paths or h.ws.hub_datasets):  # the library refuses the rest
            with gr.Row():
                new_path = gr.Textbox(label="Where", placeholder=hint, scale=3, min_width=240)
                new_labels = gr.Textbox(label="Label columns (datasets, labels CSV)",
                                        placeholder="valence, arousal, 1-5  or  emotion",
                                        scale=2, min_width=200)
                new_name = gr.Textbox(label="Name (optional)", scale=1, min_width=140)
                add = gr.Button("Add", scale=1, min_width=80)
                remove = gr.Button("Remove the chosen collection", size="sm", scale=1, min_width=120,
                                   elem_id="remove-collection")
            added = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                (search_in, search_out, strip_in, strip_out, compare_in, compare_out, url_out,
                 ckpt_b) = explore_tab(h, ckpt, coll)
            with gr.Tab("Analyse a voice", id="analyse"):
                voice_ckpt, near = analyse_tab(h)
            with gr.Tab("Embedding space", id="embedding"):
                emb_a, emb_b = embedding_tab(h, coll)
            with gr.Tab("Train", id="train"):
                followed, follow, train_coll = train_tab(h)
            with gr.Tab("Evaluate", id="evaluate"):
                eval_chosen, eval_coll = evaluate_tab(h)
        gr.Markdown(f"API and MCP: see 'Use via API' below (tools caption, retrieve, analyse, estimate_va, "
                    f"embedding_map, evaluate, checkpoints, collections; scripts also reach train, "
                    f"training_status, stop_training and remove_collection, see docs/app.md). "
                    f"Uploads: at most {UPLOAD_LIMIT}.")

        lists = [ckpt, emb_a, emb_b, eval_chosen, ckpt_b, voice_ckpt]
        refresh_lists = dict(fn=h.refresh_checkpoints, inputs=lists, outputs=lists, api_visibility="private",
                             show_progress="hidden")
        refresh.click(**refresh_lists)
        followed.then(**refresh_lists)  # a finished (or stopped) run appears in every checkpoint list
        ckpt.change(h.card, ckpt, card, api_visibility="private", show_progress="hidden", concurrency_limit=None)
        add.click(h.add_collection, [new_path, new_name, new_labels], [coll, train_coll, eval_coll, added, near],
                  api_visibility="private", **HEAVY)
        remove.click(h.remove_collection, [coll, train_coll, eval_coll], [coll, train_coll, eval_coll, added],
                     api_name="remove_collection_view", api_visibility="private", concurrency_limit=None)
        load = demo.load(**refresh_lists)
        ready = load.then(h.wait_for_demo, None, banner, api_visibility="private", show_progress="hidden",
                          concurrency_limit=None)
        ready = ready.then(h.from_url, [ckpt, *url_out], [ckpt, *url_out], api_visibility="private",
                           show_progress="hidden", concurrency_limit=None)
        ready.then(h.explore, search_in, search_out, api_visibility="private", show_progress="minimal", **SEARCH
                   ).then(h.compare, compare_in, compare_out, api_visibility="private", show_progress="hidden",
                          **SEARCH)
        ready.then(h.strip, strip_in, strip_out, api_visibility="private", show_progress="hidden", **SEARCH)
        ready.then(**refresh_lists)
        load.then(**follow).then(**refresh_lists)  # a job started earlier (another tab, before a reload) is followed

        # The tools an agent sees over MCP (and the "Use via API" page), each named after its endpoint: they read
        # and are bounded. Training is for people and scripts (gradio_client, positional arguments): it acts on
        # the one shared training slot, and stop_training would stop a visitor's run.
        gr.api(tool(h.caption, "caption"), api_name="caption", concurrency_limit=None)
        gr.api(tool(h.api_retrieve, "retrieve"), api_name="retrieve", **SEARCH)
        gr.api(tool(h.api_analyse, "analyse"), api_name="analyse", **HEAVY)
        gr.api(tool(h.estimate_va, "estimate_va"), api_name="estimate_va", **HEAVY)
        gr.api(tool(h.api_embedding_map, "embedding_map"), api_name="embedding_map", **HEAVY)
        gr.api(tool(h.api_evaluate, "evaluate"), api_name="evaluate", **HEAVY)
        gr.api(tool(h.api_checkpoints, "checkpoints"), api_name="checkpoints", concurrency_limit=None)
        gr.api(tool(h.api_collections, "collections"), api_name="collections", concurrency_limit=None)
        scripts = dict(api_visibility="undocumented", concurrency_limit=None)
        gr.api(h.api_train, api_name="train", **scripts)
        gr.api(h.api_training_status, api_name="training_status", **scripts)
        gr.api(h.api_stop_training, api_name="stop_training", **scripts)
        gr.api(h.api_remove_collection, api_name="remove_collection", **scripts)
    return demo


def create(data_dir: str | None = None, allow_local_paths: bool = False, local_roots: list[str] | None = None,
           warm: bool = True, build: bool = True, **demo_kwargs) -> tuple[gr.Blocks, Handlers]:
    """Build the app and its handlers at once (nothing slow: the page can answer within seconds); with `build`,
    the demo's assets (emorank.app.build.ensure_demo: corpus, features) are built in a background thread, their
    progress shown on the page, followed by the warm-up when `warm`.

    `allow_local_paths`: whether "Add a collection" takes server paths (under `local_roots`, default every
    folder); off by default, see emorank.app.bounds.local_paths_policy for who may turn it on."""
    from emorank.training.trainer import train

    assets = plan_demo(data_dir, checkpoint_dirs=demo_kwargs.pop("checkpoint_dirs", None),
                       cache_path=demo_kwargs.pop("cache_path", None))
    ws = Workspace(assets, allow_local_paths=allow_local_paths, local_roots=local_roots)
    jobs = TrainingJobs(on_checkpoint=ws.add_checkpoint, runner=gpu(train), cache_path=assets.cache_path)
    h = Handlers(ws, jobs, served_roots=[*ws.allowed_roots(), str(demo_clip_folder(assets))])
    if build:
        ws.start_build(warm=warm, **demo_kwargs)
    return build_app(h), h


def launch(demo: gr.Blocks, h: Handlers, warm: bool = True, prevent_thread_lock: bool = False, **kwargs):
    """Launch with the safety settings (only the collections' folders and Gradio's own cache are served, at most
    MAX_SESSIONS visitor sessions kept in memory); with `warm`, UMAP is compiled in the background (the workspace
    warms its models itself after its build)."""
    from emorank.app.theme import HEAD, theme_and_css
    from emorank.evaluation.maps import warm_umap

    theme, css = theme_and_css()
    # Gradio re-summarises every past event with pandas after each request (for its optional monitoring page);
    # with the default frequency of 1 that cost grows with uptime and shows in slider latency.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    # Gradio keeps each visitor session's copy of the page (every component's last value, ~0.7 MB here) for
    # 10,000 sessions by default: bound it (least recently active sessions are dropped first).
    kwargs.setdefault("state_session_capacity", MAX_SESSIONS)
    out = demo.queue(default_concurrency_limit=4).launch(
        allowed_paths=h.served, max_file_size=UPLOAD_LIMIT, show_error=False, theme=theme, css=css, head=HEAD,
        prevent_thread_lock=True, **kwargs)
    h.links.mount(out[0])  # the API's clip links: opaque names, never the server's folders
    if warm:
        warm_umap()
    if not prevent_thread_lock:
        demo.block_thread()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--data", help="data folder (default: $EMORANK_DATA or ./data/demo)")
    parser.add_argument("--checkpoints", nargs="+", help="folders of shipped checkpoints (default: ./checkpoints)")
    paths = parser.add_mutually_exclusive_group()
    paths.add_argument("--no-local-paths", action="store_true", help="refuse collections from server paths")
    paths.add_argument("--allow-local-paths", action="store_true",
                       help="accept collections from server paths even when the app is reachable from the network "
                            "(default: only when it listens on loopback); see --local-root")
    parser.add_argument("--local-root", action="append", metavar="DIR",
                        help="accept server paths only under DIR (repeatable; default: every folder)")
    parser.add_argument("--mcp", action="store_true", default=os.environ.get("EMORANK_MCP", "") in ("1", "true"),
                        help="also serve the tools over MCP at /gradio_api/mcp/ (or set EMORANK_MCP=1)")
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    allowed = local_paths_policy(args.host, opt_in=args.allow_local_paths, opt_out=args.no_local_paths)
    demo, h = create(args.data, allow_local_paths=allowed, local_roots=args.local_root,
                     checkpoint_dirs=args.checkpoints)
    launch(demo, h, server_name=args.host, server_port=args.port, mcp_server=args.mcp)


if __name__ == "__main__":
    main()
