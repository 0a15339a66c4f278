"""The app: what the Gradio front end (``app.py``) serves, as a library that never needs a browser (layer 5; may
import every lower layer; only :mod:`~emorank.app.handlers`, :mod:`~emorank.app.errors`, :mod:`~emorank.app.serving`,
:mod:`~emorank.app.theme` and :mod:`~emorank.app.tabs` import gradio).

:mod:`~emorank.app.bounds` bounds every argument a visitor sends and confines paths; :mod:`~emorank.app.build` is
the first-start build (demo corpus, features, caption embeddings) in the background;
:mod:`~emorank.app.workspace` holds checkpoints (:mod:`~emorank.app.checkpoints`) and collections
(:mod:`~emorank.app.collections`) by name with cached models and indexes; :mod:`~emorank.app.jobs` runs one
training job at a time; :mod:`~emorank.app.handlers` turns library results into widget values, one mixin per tab in
:mod:`~emorank.app.tabs`; :mod:`~emorank.app.serving` serves clips under opaque links and keeps output folders;
:mod:`~emorank.app.errors` turns errors into sentences without server paths; :mod:`~emorank.app.formatting` and
:mod:`~emorank.app.theme` shape what the page shows.
"""
