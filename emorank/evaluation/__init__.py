"""Evaluation: the paper's protocol on a trained model, zero-shot classification, comparisons of systems over
seeds, the shift suite, and the embedding maps and figures that show the results (layer 4; may import everything
below it: search, training, model, encoders, captions, losses, metrics, data).

:mod:`~emorank.evaluation.evaluate` runs the protocol; :mod:`~emorank.evaluation.zeroshot` zero-shot UAR;
:mod:`~emorank.evaluation.robustness` the shift suite (telephone band, gain, noise, codecs, reverb, short clips);
:mod:`~emorank.evaluation.compare` trains and evaluates systems x seeds into the paper's Tables 1-2;
:mod:`~emorank.evaluation.maps` the 2-D embedding maps and the modality gap; :mod:`~emorank.evaluation.figures` the
plotly and PNG figures. The metrics themselves are pure functions in :mod:`emorank.metrics`.
"""
