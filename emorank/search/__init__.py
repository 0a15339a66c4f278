"""Search: a collection of embedded clips and the queries it answers, caption or V-A point -> clips, clip ->
captions and V-A estimate (layer 3; may import model, encoders, captions, metrics and data).

:mod:`~emorank.search.index` is the exact top-k index (float32 or float16 storage); :mod:`~emorank.search.retrieval`
the :class:`~emorank.search.retrieval.Collection` built on it; :mod:`~emorank.search.typicality` how far a clip or a
free-text query lies from what a checkpoint was trained on (when an estimate should not be trusted).
"""
