"""Hugging Face model references: a Hub id or a local folder, pinned by commit or content digest, read
without network when ``HF_HUB_OFFLINE=1``.
"""
from __future__ import annotations

import json
from pathlib import Path

from emorank.encoders.base import (
    EncoderInputError,
    _hub_commit,
    _is_local,
    _looks_like_path,
    _offline,
    _unavailable,
    folder_digest,
)


class _HFModelRef:
    """Where a Hugging Face model comes from and how to load it (shared by the neural encoders)."""

    def __init__(self, kind: str, model: str, revision: str | None, trust_remote_code: bool) -> None:
        if not isinstance(model, str) or not model:
            raise EncoderInputError(f"{kind} encoder needs a model id or folder, got {model!r}")
        self.kind, self.model, self.revision, self.trust = kind, model, revision, bool(trust_remote_code)
        self.local = _is_local(model)
        if not self.local and _looks_like_path(model):
            raise _unavailable(kind, model, "no such folder")
        self.source = str(Path(model).expanduser().resolve()) if self.local else model
        self._identity: str | None = None

    def kwargs(self) -> dict:
        kw: dict = {"trust_remote_code": self.trust}
        if not self.local:
            kw["revision"] = self.revision
            kw["local_files_only"] = _offline()
        return kw

    def load(self, loader, **extra):
        """``loader.from_pretrained(source)``, with every loading failure turned into EncoderUnavailableError.

        A local folder loads without transformers' "Loading weights" progress bar (it is instant, and it printed on
        every command); downloads keep their progress."""
        from transformers.utils import logging as hf_logging

        quiet = self.local and hf_logging.is_progress_bar_enabled()
        if quiet:
            hf_logging.disable_progress_bar()
        try:
            return loader.from_pretrained(self.source, **self.kwargs(), **extra)
        except (OSError, ValueError, ImportError, AttributeError, KeyError, TypeError) as err:
            raise _unavailable(self.kind, self.model, err) from err
        finally:
            if quiet:
                hf_logging.enable_progress_bar()

    def identity(self, ensure_loaded) -> str:
        """A string naming the exact weights: folder digest, or Hub id + snapshot commit (loads once if unknown)."""
        if self._identity is None:
            if self.local:
                self._identity = f"folder:{folder_digest(self.source)}"
            else:
                commit = _hub_commit(self.model, self.revision)
                if commit is None:  # not cached yet: load (downloads when online) so the commit is known
                    ensure_loaded()
                    commit = _hub_commit(self.model, self.revision) or f"rev:{self.revision or 'main'}"
                self._identity = f"hub:{self.model}@{commit}"
        return self._identity


def _repo_file(ref: _HFModelRef, name: str) -> str | None:
    """Local path of one file of a model repo or folder (downloaded unless offline); None when absent."""
    from transformers.utils import cached_file

    try:
        return cached_file(ref.source, name, revision=None if ref.local else ref.revision,
                           local_files_only=_offline() and not ref.local, _raise_exceptions_for_missing_entries=False)
    except OSError:
        return None


def _read_config(ref: _HFModelRef) -> dict:
    path = _repo_file(ref, "config.json")
    if path is None:
        raise _unavailable(ref.kind, ref.model, "config.json not found locally or on the Hub")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_state_dict(ref: _HFModelRef) -> dict:
    """The weights of a model repo or folder (safetensors, else a PyTorch .bin loaded with weights_only)."""
    import torch

    for name in ("model.safetensors", "pytorch_model.bin"):
        path = _repo_file(ref, name)
        if path is None:
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    raise _unavailable(ref.kind, ref.model, "no model.safetensors or pytorch_model.bin found")
