"""Corpus registry: one function turns (corpus name, local path) into examples.

The licensed corpora are never downloaded: `data.root` points at a local copy in
the corpus's own layout. With an empty `data.root`, a synthetic corpus is
generated (deterministically from the config) into the workdir in the SAME
layout and read back by the same reader.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil

from jaxpara.data.types import Corpus, CorpusError

# name -> (reader module, synthetic writer "module:function", synthetic root file)
_REGISTRY = {
    "ccs": ("ccs", "cough:write_ccs"),
    "icbhi": ("icbhi", "respiratory:write_icbhi"),
    "iemocap": ("iemocap", "emotion:write_iemocap"),
    "fau_aibo": ("fau_aibo", "emotion:write_fau_aibo"),
    "emodb": ("emodb", "emotion:write_emodb"),
    "manifest": ("manifest", "emotion:write_manifest"),
}
CORPORA = tuple(_REGISTRY)


def _reader(name: str):
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown corpus {name!r} (config key data.corpus); "
            f"expected one of {list(CORPORA)}"
        )
    return importlib.import_module(f"jaxpara.data.corpora.{_REGISTRY[name][0]}")


def read_corpus(name: str, root: str, *, improvised_only: bool = False) -> Corpus:
    """Parses a corpus in its on-disk layout.

    Args:
      name: registry name, one of `CORPORA`.
      root: the corpus folder (for 'manifest', the CSV file).
      improvised_only: IEMOCAP only: keep improvised dialogues (cards C3, C5).

    Returns:
      The parsed `Corpus`.
    """
    module = _reader(name)
    if not os.path.exists(root):
        raise CorpusError(f"data.root {root!r} for corpus {name!r} does not exist")
    if name == "iemocap":
        return module.read(root, improvised_only=improvised_only)
    if improvised_only:
        raise ValueError(
            f"data.improvised_only=True applies to IEMOCAP only, not {name!r}"
        )
    return module.read(root)


def synthetic_kwargs(name: str, synthetic_cfg, seed: int) -> dict:
    """Writer keyword arguments for corpus `name` from `config.data.synthetic`."""
    kwargs = dict(
        seed=seed, difficulty=synthetic_cfg.difficulty, snr_db=synthetic_cfg.snr_db
    )
    if name in ("ccs", "icbhi"):
        kwargs["num_recordings"] = synthetic_cfg.num_recordings
    else:
        kwargs["num_speakers"] = synthetic_cfg.num_speakers
        kwargs["utterances_per_speaker"] = synthetic_cfg.utterances_per_speaker
    return kwargs


def generate_synthetic(name: str, base_dir: str, synthetic_cfg, seed: int) -> str:
    """Writes (once) the synthetic corpus `name` and returns its reader root.

    The corpus folder is keyed by a hash of the generator arguments, so a
    changed size or difficulty never reuses stale files; a finished corpus is
    marked with `COMPLETE` and reused.
    """
    _reader(name)
    kwargs = synthetic_kwargs(name, synthetic_cfg, seed)
    key = hashlib.sha1(
        json.dumps({"name": name, **kwargs}, sort_keys=True).encode()
    ).hexdigest()[:10]
    root = os.path.join(base_dir, f"synthetic_{name}_{key}")
    marker = os.path.join(root, "COMPLETE")
    module_name, fn_name = _REGISTRY[name][1].split(":")
    writer = getattr(
        importlib.import_module(f"jaxpara.data.corpora.synthetic.{module_name}"),
        fn_name,
    )
    if not os.path.exists(marker):
        logging.info("Generating synthetic %s corpus into %s (%s)", name, root, kwargs)
        tmp = root + ".partial"
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        result = writer(tmp, **kwargs)
        if name == "manifest":
            with open(os.path.join(tmp, "MANIFEST_PATH"), "w") as f:
                f.write(os.path.relpath(str(result), tmp))
        if os.path.exists(root):
            shutil.rmtree(root)
        os.replace(tmp, root)
        with open(marker, "w") as f:
            json.dump({"name": name, **kwargs}, f)
    if name == "manifest":
        with open(os.path.join(root, "MANIFEST_PATH")) as f:
            return os.path.join(root, f.read().strip())
    return root


def load_corpus(data_cfg, workdir: str, seed: int = 0) -> tuple[Corpus, str]:
    """Reads `data_cfg.corpus` from `data_cfg.root`, or its synthetic stand-in.

    Args:
      data_cfg: the `config.data` ConfigDict.
      workdir: run directory; synthetic corpora are written to `<workdir>/data`.
      seed: seed of the synthetic generator.

    Returns:
      (corpus, root actually read).
    """
    root = data_cfg.root
    if not root:
        root = generate_synthetic(
            data_cfg.corpus, os.path.join(workdir, "data"), data_cfg.synthetic, seed
        )
        logging.info(
            "data.root is empty: using the SYNTHETIC %s corpus at %s "
            "(set --config.data.root to read a real corpus)",
            data_cfg.corpus,
            root,
        )
    corpus = read_corpus(
        data_cfg.corpus, root, improvised_only=data_cfg.improvised_only
    )
    if corpus.excluded:
        logging.info(
            "%s: %d examples used, %d excluded by the protocol",
            corpus.name,
            len(corpus.examples),
            len(corpus.excluded),
        )
    for w in corpus.warnings:
        logging.warning("%s: %s", corpus.name, w)
    return corpus, root
