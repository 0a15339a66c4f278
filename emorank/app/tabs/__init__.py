"""The app's tabs, one module per tab: each holds a mixin of the handlers its widgets and API endpoints call
(Explore, Analyse, Embedding space, Train, Evaluate), combined in :class:`emorank.app.handlers.Handlers`. They may
import the rest of :mod:`emorank.app` and everything below it, never :mod:`emorank.app.handlers` itself."""
