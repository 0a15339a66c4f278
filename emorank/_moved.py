"""Module paths from before the subpackage layout (emorank 0.1), kept importable for one release.

``import emorank.datasets`` (or ``from emorank.train import TrainConfig``) still works and warns with a
:class:`DeprecationWarning` naming the new place. The old module is a thin stand-in whose attributes are looked up
in the modules its contents moved to, in order; nothing is copied, so monkeypatching must target the new module.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED: dict[str, tuple[str, ...]] = {
    "emorank.audio": ("emorank.data.audio",),
    "emorank.datasets": ("emorank.data.manifest", "emorank.data.proxies", "emorank.data.rated", "emorank.data.acted",
                         "emorank.data.corpora", "emorank.data.splits", "emorank.data.hf"),
    "emorank.data.hub": ("emorank.data.hf",),
    "emorank.corpus": ("emorank.data.synthetic", "emorank.data.synthetic_plan"),
    "emorank.espeak": ("emorank.data.espeak",),
    "emorank.emotion_captions": ("emorank.captions.emotion",),
    "emorank.paralinguistics": ("emorank.captions.acoustic",),
    "emorank.features": ("emorank.encoders.cache",),
    "emorank.hub": ("emorank.model.hub", "emorank.model.card"),
    "emorank.systems": ("emorank.training.systems",),
    "emorank.train": ("emorank.training.trainer",),
    "emorank.distributed": ("emorank.training.distributed",),
    "emorank.evaluate": ("emorank.evaluation.evaluate",),
    "emorank.zeroshot": ("emorank.evaluation.zeroshot",),
    "emorank.compare": ("emorank.evaluation.compare",),
    "emorank.viz": ("emorank.evaluation.maps", "emorank.evaluation.figures"),
    "emorank.index": ("emorank.search.index",),
    "emorank.retrieval": ("emorank.search.retrieval",),
    "emorank.jobs": ("emorank.app.jobs",),
    "emorank.demo": ("emorank.app.bounds", "emorank.app.build", "emorank.app.collections", "emorank.app.checkpoints",
                     "emorank.app.workspace"),
    "emorank.ui": ("emorank.app.handlers", "emorank.app.bounds", "emorank.app.errors", "emorank.app.serving",
                   "emorank.app.formatting", "emorank.app.theme"),
}
"""Old module path -> the modules its names live in now (searched in this order)."""


class MovedModule(types.ModuleType):
    """Stand-in for an old module path: attribute access reads through to the new modules."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        for target in MOVED[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (moved to {', '.join(MOVED[self.__name__])}) has no "
                             f"attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in MOVED[self.__name__] for n in dir(importlib.import_module(t))})


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds only the names in :data:`MOVED` (after the normal finders found nothing there)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return MovedModule(spec.name)

    def exec_module(self, module) -> None:
        new = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} moved to {' / '.join(new)} (emorank 0.2); the old path works until 0.3",
                      DeprecationWarning, stacklevel=2)


def install() -> None:
    """Add the finder once (idempotent): old paths resolve only when nothing else provides them."""
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())
