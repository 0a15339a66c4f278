"""Training: the systems (caption builder + loss [+ teacher]) and the trainer that fits the heads on cached features
(layer 3; may import model, encoders, captions, losses, metrics and data).

:mod:`~emorank.training.systems` is the registry of the paper's eight systems and ours and prepares a manifest for
training (features, captions, labels); :mod:`~emorank.training.trainer` is the seeded, resumable training loop;
:mod:`~emorank.training.distributed` the ``torchrun`` data-parallel helpers.
"""
