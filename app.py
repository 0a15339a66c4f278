"""emorank demo app: explore, analyse, map, train and evaluate EmotionRankCLAP-style checkpoints.

    python app.py                 # first start builds the synthetic demo corpus + feature cache (about 2 min)
    python app.py --port 7861 --data /path/to/data
    python app.py --host 0.0.0.0  # reachable from the network: collections from server paths are then refused

Collections from server paths ("Add a collection") are accepted only when the app listens on loopback
(127.0.0.1, the default), or with --allow-local-paths (optionally confined with --local-root DIR).

Layout and wiring only: the handlers live in emorank/ui.py, the work in the emorank library.
"""
from __future__ import annotations

import argparse
import os
import threading

import gradio as gr

from emorank.demo import ANALYSE_MAX_SECONDS, DEMO_ALL, DEMO_TEST, Workspace, ensure_demo, local_paths_policy
from emorank.jobs import TrainingJobs
from emorank.systems import SYSTEMS
from emorank.ui import (ANALYSE_K, HIT_HEADERS, MAX_K, NONE, REPORT_HEADERS, STRIP_VALUES, Handlers, example_captions,
                        gpu, player)

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


def explore_tab(h: Handlers, ckpt, coll) -> tuple[list, list, list, list]:
    with gr.Row():
        with gr.Column(scale=1):
            valence = gr.Slider(1, 7, 4, step=0.5, label="Valence", info="1 very negative … 7 very positive",
                                elem_id="valence")
            arousal = gr.Slider(1, 7, 4, step=0.5, label="Arousal", info="1 very calm … 7 very active",
                                elem_id="arousal")
            caption = gr.Textbox(h.caption(4, 4), lines=1, max_lines=4, label="Caption (edit freely; Enter searches)",
                                 elem_id="caption")
            with gr.Row():
                k = gr.Slider(1, MAX_K, 5, step=1, label="Clips", scale=3)
                search = gr.Button("Search", variant="primary", scale=1)
            shipped, examples = example_captions(), None
            if shipped:
                with gr.Accordion("Free-text examples", open=False, elem_id="examples"):
                    examples = gr.Examples([[c] for c in shipped], inputs=[caption], label="Click one to search",
                                           example_labels=[c.replace("The person is speaking", "…", 1)
                                                           for c in shipped])
        plane = gr.Plot(label="Valence-arousal plane", elem_id="va-plane")
    with gr.Row():
        players = [player(f"#{i + 1}", "hit") for i in range(MAX_K)]
    table = gr.Dataframe(headers=HIT_HEADERS, label="Retrieved clips", interactive=False, elem_id="hits")
    with gr.Accordion("Ordinal neighbours: hear the ordering (the paper's Figure 3)", open=True):
        with gr.Row():
            axis = gr.Radio(["valence", "arousal"], value="arousal", label="Along", scale=1)
            fixed = gr.Slider(1, 7, 4, step=0.5, label="Other axis held at", scale=2)
            go = gr.Button("Retrieve the row", scale=1)
        note = gr.Markdown()
        with gr.Row():
            strip = [player(f"{v:g}", "strip") for v in STRIP_VALUES]

    search_in, search_out = [ckpt, coll, caption, valence, arousal, k], [table, plane, *players]
    # One queue for every search, in submission order, so the last query's results are the ones left on screen.
    serial = dict(**SEARCH, show_progress="minimal", trigger_mode="always_last")
    gr.on([valence.change, arousal.change], h.slide, [ckpt, coll, valence, arousal, k], [caption, *search_out],
          api_name="slide", api_visibility="undocumented", **serial)  # caption + results: one round trip
    gr.on([caption.submit, search.click, k.change, ckpt.change, coll.change], h.explore, search_in, search_out,
          api_name="explore", api_visibility="undocumented", **serial)
    if examples is not None:
        examples.load_input_event.then(h.explore, search_in, search_out, api_visibility="private", **serial)
    gr.on([go.click, axis.change, fixed.change, ckpt.change, coll.change], h.strip, [ckpt, coll, axis, fixed],
          [note, *strip], api_name="strip", api_visibility="undocumented", show_progress="minimal",
          trigger_mode="always_last", **SEARCH)
    return search_in, search_out, [ckpt, coll, axis, fixed], [note, *strip]


def analyse_tab(h: Handlers, ckpt, coll) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath", elem_id="analyse-audio",
                             label=f"A voice clip (upload or record, up to {ANALYSE_MAX_SECONDS:.0f} s)")
            run = gr.Button("Analyse", variant="primary")
            summary = gr.Markdown()
        plane = gr.Plot(label="Where it falls on the valence-arousal plane")
    captions = gr.Dataframe(headers=["nearest captions", "valence", "arousal", "similarity"], interactive=False)
    table = gr.Dataframe(headers=HIT_HEADERS, label="Nearest clips", interactive=False)
    with gr.Row():
        players = [player(f"#{i + 1}", "neighbour") for i in range(ANALYSE_K)]
    gr.on([audio.upload, audio.stop_recording, run.click], h.analyse, [audio, ckpt, coll],
          [summary, plane, captions, table, *players], api_name="analyse_view", api_visibility="private", **HEAVY)
    with gr.Row(visible=False):  # the JSON endpoint /analyse (takes a file, returns a dict)
        api_audio, api_ckpt, api_coll = gr.Audio(type="filepath"), gr.Textbox(), gr.Textbox(DEMO_TEST)
        api_k, api_out, api_go = gr.Number(ANALYSE_K, precision=0), gr.JSON(), gr.Button()
    api_go.click(h.api_analyse, [api_audio, api_ckpt, api_coll, api_k], api_out, api_name="analyse", **HEAVY)


def embedding_tab(h: Handlers, coll):
    with gr.Row():
        a = gr.Dropdown(h.checkpoint_choices(), value=h.default_checkpoint(), label="Checkpoint")
        b = gr.Dropdown([(NONE, NONE)] + h.checkpoint_choices(), value=h.second_checkpoint(), label="Side by side with")
        method = gr.Radio([("UMAP", "umap"), ("PCA (fast)", "pca")], value="umap", label="Projection")
        colour = gr.Radio(["modality", "valence", "arousal"], value="modality", label="Colour by")
        points = gr.Slider(50, 2000, 600, step=50, label="Clips (at most)")
    draw = gr.Button("Draw the embedding space", variant="primary")
    plot = gr.Plot(label="Audio (circles) and captions (diamonds)", elem_id="embedding-plot")
    gaps = gr.Dataframe(headers=["checkpoint", "MMD²", "Wasserstein", "centroid distance", "clips"],
                        label="Modality gap (in the embedding space, not the 2-D map)", interactive=False)
    files = gr.File(label="Downloads: figure (HTML) and embeddings (NPZ + CSV of the map)", file_count="multiple")
    gr.on([draw.click, colour.change], h.embedding, [a, b, coll, method, colour, points], [plot, gaps, files],
          api_visibility="private", **HEAVY)
    return a, b


def train_tab(h: Handlers):
    with gr.Row():
        coll = gr.Dropdown(h.collection_choices(labelled_only=True), value=DEMO_ALL, label="Training collection",
                           info="needs train and dev splits")
        system = gr.Dropdown([(f"{s.title} ({n})", n) for n, s in SYSTEMS.items()], value="emotionrankclap",
                             label="System (captions + loss)")
        name = gr.Textbox(label="Run name (optional)", placeholder="e.g. erc-lr3e-4")
    with gr.Row():
        epochs = gr.Slider(1, 100, 15, step=1, label="Epochs")
        batch = gr.Slider(8, 512, 64, step=8, label="Batch size")
        lr = gr.Number(1e-4, label="Learning rate")
        seed = gr.Number(0, precision=0, label="Seed")
    with gr.Row():
        start = gr.Button("Train", variant="primary")
        stop = gr.Button("Stop (keeps the best checkpoint so far)", variant="stop")
    status = gr.Markdown(h.jobs.status().summary(), elem_id="train-status")
    curve = gr.Plot(label="Loss", elem_id="train-curve")
    follow = dict(fn=h.follow_training, inputs=None, outputs=[status, curve], show_progress="hidden",
                  api_visibility="private", concurrency_limit=None)
    started = start.click(h.start_training, [coll, system, epochs, batch, lr, seed, name], status,
                          api_visibility="private", concurrency_limit=None)
    stop.click(h.api_stop_training, None, None, api_visibility="private", concurrency_limit=None)
    return started.then(**follow), follow, coll


def evaluate_tab(h: Handlers):
    with gr.Row():
        chosen = gr.Dropdown(h.checkpoint_choices(), value=[c for c in (h.default_checkpoint(), h.second_checkpoint())
                                                            if c and c != NONE],
                             multiselect=True, label="Checkpoints (one, or several to compare)")
        coll = gr.Dropdown(h.collection_choices(labelled_only=True), value=DEMO_TEST, label="Collection")
        split = gr.Dropdown(["test", "dev", "train"], value="test", label="Split")
    with gr.Row():
        trials = gr.Slider(2, 30, 30, step=1, label="Alignment trials (paper: 30)")
        lists = gr.Slider(10, 100, 100, step=10, label="Ordinality lists per axis (paper: 100)")
        run = gr.Button("Run the paper's tests", variant="primary")
    table = gr.Dataframe(headers=REPORT_HEADERS, label="Results (mean ± std)", interactive=False)
    paper = gr.Markdown()
    plot = gr.Plot(label="Cross-modal ordinality")
    download = gr.File(label="Full report (JSON)")
    run.click(h.evaluate, [chosen, coll, split, trials, lists], [table, paper, plot, download],
              api_name="evaluate_view", api_visibility="private", **HEAVY)
    return chosen, coll


def build_app(h: Handlers) -> gr.Blocks:
    """The Blocks of the demo (not launched)."""
    # delete_cache: Gradio's copies of uploads and downloads older than an hour are removed every half hour.
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            ckpt = gr.Dropdown(h.checkpoint_choices(), value=h.default_checkpoint(), label="Checkpoint (system)",
                               elem_id="checkpoint", scale=3)
            coll = gr.Dropdown(h.collection_choices(), value=DEMO_TEST, label="Collection", elem_id="collection",
                               scale=3)
            refresh = gr.Button("⟳ Refresh lists", size="sm", scale=1)
        with gr.Accordion("Add a collection: a manifest CSV (labelled) or a folder of audio (labels unknown)",
                          open=False, visible=h.ws.allow_local_paths):  # the handler refuses server paths itself
            with gr.Row():
                new_path = gr.Textbox(label="Path on the server", scale=3)
                new_name = gr.Textbox(label="Name (optional)", scale=1)
                add = gr.Button("Add", scale=1)
            added = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                search_in, search_out, strip_in, strip_out = explore_tab(h, ckpt, coll)
            with gr.Tab("Analyse a voice", id="analyse"):
                analyse_tab(h, ckpt, coll)
            with gr.Tab("Embedding space", id="embedding"):
                emb_a, emb_b = embedding_tab(h, coll)
            with gr.Tab("Train", id="train"):
                followed, follow, train_coll = train_tab(h)
            with gr.Tab("Evaluate", id="evaluate"):
                eval_chosen, eval_coll = evaluate_tab(h)
        gr.Markdown(f"API: `gradio_client.Client(url).predict(..., api_name='/retrieve')`; endpoints caption, "
                    f"retrieve, analyse, embedding_map, train, training_status, stop_training, evaluate, "
                    f"checkpoints, collections (see 'Use via API' below). Uploads: at most {UPLOAD_LIMIT}.")

        lists = [ckpt, emb_a, emb_b, eval_chosen]
        refresh_lists = dict(fn=h.refresh_checkpoints, inputs=lists, outputs=lists, api_visibility="private",
                             show_progress="hidden")
        refresh.click(**refresh_lists)
        followed.then(**refresh_lists)  # a finished (or stopped) run appears in every checkpoint list
        add.click(h.add_collection, [new_path, new_name], [coll, train_coll, eval_coll, added],
                  api_visibility="private", **HEAVY)
        load = demo.load(**refresh_lists)
        load.then(h.explore, search_in, search_out, api_visibility="private", show_progress="minimal", **SEARCH)
        load.then(h.strip, strip_in, strip_out, api_visibility="private", show_progress="hidden", **SEARCH)
        load.then(**follow).then(**refresh_lists)  # a job started earlier (another tab, before a reload) is followed

        gr.api(h.caption, api_name="caption", concurrency_limit=None)
        gr.api(h.api_retrieve, api_name="retrieve", **SEARCH)
        gr.api(h.api_embedding_map, api_name="embedding_map", **HEAVY)
        gr.api(h.api_train, api_name="train", concurrency_limit=None)
        gr.api(h.api_training_status, api_name="training_status", concurrency_limit=None)
        gr.api(h.api_stop_training, api_name="stop_training", concurrency_limit=None)
        gr.api(h.api_evaluate, api_name="evaluate", **HEAVY)
        gr.api(h.api_checkpoints, api_name="checkpoints", concurrency_limit=None)
        gr.api(h.api_collections, api_name="collections", concurrency_limit=None)
    return demo


def create(data_dir: str | None = None, allow_local_paths: bool = False, local_roots: list[str] | None = None,
           warm: bool = True, **demo_kwargs) -> tuple[gr.Blocks, Handlers]:
    """Bootstrap the demo data (see emorank.demo.ensure_demo), then build the app and its handlers.

    `allow_local_paths`: whether "Add a collection" takes server paths (under `local_roots`, default every
    folder); off by default, see emorank.demo.local_paths_policy for who may turn it on."""
    from emorank.train import train

    assets = ensure_demo(data_dir, **demo_kwargs)
    ws = Workspace(assets, allow_local_paths=allow_local_paths, local_roots=local_roots)
    jobs = TrainingJobs(on_checkpoint=ws.add_checkpoint, runner=gpu(train), cache_path=assets.cache_path)
    h = Handlers(ws, jobs)
    if warm and h.default_checkpoint():
        ws.index(h.default_checkpoint(), DEMO_TEST)  # features are cached: the first query is then instant
    return build_app(h), h


def launch(demo: gr.Blocks, h: Handlers, warm: bool = True, prevent_thread_lock: bool = False, **kwargs):
    """Launch with the safety settings (only the collections' folders and Gradio's own cache are served), then
    warm up in the background (caption grids, remaining features, UMAP) once the server answers."""
    from emorank.ui import theme_and_css
    from emorank.viz import warm_umap

    theme, css = theme_and_css()
    # Gradio re-summarises every past event with pandas after each request (for its optional monitoring page);
    # with the default frequency of 1 that cost grows with uptime and shows in slider latency.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    out = demo.queue(default_concurrency_limit=4).launch(
        allowed_paths=h.served, max_file_size=UPLOAD_LIMIT, show_error=False, theme=theme, css=css,
        prevent_thread_lock=True, **kwargs)
    if warm:
        threading.Thread(target=h.ws.warm, name="emorank-warm", daemon=True).start()
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
    args = parser.parse_args()
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    allowed = local_paths_policy(args.host, opt_in=args.allow_local_paths, opt_out=args.no_local_paths)
    demo, h = create(args.data, allow_local_paths=allowed, local_roots=args.local_root,
                     checkpoint_dirs=args.checkpoints)
    launch(demo, h, server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
