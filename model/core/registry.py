"""The saved-model registry: which network is active, and whose faces each one learned.

Layout of ``<data>/models``::

    active.json                         {"model": "<unit>/model.keras", "previous": ...}
    finetuned-20261202-101500/          one *unit*: a model and its card, published by
        model.keras                     one atomic folder rename, so a crash never leaves
        model.json                      a model without its card or the reverse

Older installs kept flat ``finetuned-*.keras`` + ``.json`` pairs; they are still read,
forgotten and swept. A card records the people a fine-tuned model learned from by
their stable person id (``training.trained_on_ids``), which survives a rename;
deleting a person deletes every unit that learned from them.

Nothing here imports TensorFlow: the People page and ``python -m model remove`` use
the registry without loading a network.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model.core import files
from model.errors import ModelError
from model.settings import Settings, get_settings

ACTIVE_POINTER = "active.json"
#: Inside a unit folder.
MODEL_FILE = "model.keras"
#: Card keys (under "training"): stable ids of the people a model learned from; the older
#: display names (cards written before ids existed, matched by name).
TRAINED_ON_IDS = "trained_on_ids"
TRAINED_ON = "trained_on"


def sidecar_path(model_path: Path) -> Path:
    """The JSON card beside a ``.keras`` model (``base.keras`` -> ``base.json``)."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: Path) -> dict[str, Any] | None:
    """The model's card, or None when it is missing or unreadable."""
    try:
        card = json.loads(sidecar_path(model_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def store_model(save: Callable[[Path], object], models_dir: str | Path, card: dict[str, Any],
                *, prefix: str = "finetuned") -> Path:
    """Publish a new unit in ``models_dir``: ``save(path)`` writes the ``.keras`` file into
    a hidden staging folder, the card goes beside it, and one rename makes both appear.
    Returns the new model's path (not yet active: see ``activate_model``)."""
    models_dir = Path(models_dir)
    card = {**card, "saved_at": datetime.now(UTC).isoformat()}
    with files.staging_folder(models_dir) as staging:
        save(staging / MODEL_FILE)
        files.atomic_write_bytes(sidecar_path(staging / MODEL_FILE),
                                 json.dumps(card, indent=2, default=str).encode("utf-8"))
        target = _fresh_unit(models_dir, prefix)
        files.publish_folder(staging, target)
    return target / MODEL_FILE


def model_units(models_dir: str | Path) -> list[Path]:
    """Every complete saved model in ``models_dir`` (unit folders and older flat pairs)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if files.is_hidden(entry):
            continue
        model_file = entry / MODEL_FILE if entry.is_dir() else entry
        if model_file.suffix == ".keras" and model_file.is_file() and sidecar_path(model_file).is_file():
            found.append(model_file)
    return found


def finetuned_model_path(models_dir: str | Path) -> Path | None:
    """The active fine-tuned model named by ``<models_dir>/active.json``, or None (then the
    shipped base model is the active one). A damaged pointer counts as none: it must
    never stop the app."""
    models_dir = Path(models_dir)
    try:
        name = json.loads((models_dir / ACTIVE_POINTER).read_text(encoding="utf-8"))["model"]
        candidate = _inside(models_dir, str(name))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    card = read_card(candidate) if candidate is not None else None
    # A model fine-tuned from an older design carries no open-set rule: the shipped base
    # model (which does) takes over rather than deciding with meaningless numbers.
    if candidate is None or card is None or "match_rule" not in card:
        return None
    return candidate if candidate.is_file() else None


def active_model_path(settings: Settings | None = None) -> Path | None:
    """The model the app and CLI use: the active fine-tuned one, else the shipped base, else None."""
    settings = settings or get_settings()
    finetuned = finetuned_model_path(settings.models_dir)
    if finetuned is not None:
        return finetuned
    if settings.base_model_path.exists():
        return settings.base_model_path
    return None


def activate_model(models_dir: str | Path, path: Path | None, previous: Path | None = None) -> None:
    """Make ``path`` (a model inside ``models_dir``) the active one, remembering ``previous``
    for a roll-back; ``None`` goes back to the shipped base model."""
    models_dir = Path(models_dir)
    pointer = models_dir / ACTIVE_POINTER
    if path is None:
        pointer.unlink(missing_ok=True)
        return
    relative = _relative(models_dir, Path(path))
    if relative is None:
        raise ModelError(f"{path} is not inside the models folder {models_dir}.")
    payload = {"model": relative, "previous": str(previous) if previous else None,
               "activated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    files.atomic_write_bytes(pointer, json.dumps(payload, indent=2).encode("utf-8"))


def restore_previous(models_dir: str | Path) -> Path | None:
    """Make the previous model active again (undo the last fine-tune); returns the model
    now active inside ``models_dir``, or None when that is the shipped base model."""
    models_dir = Path(models_dir)
    try:
        previous = json.loads((models_dir / ACTIVE_POINTER).read_text()).get("previous")
    except (OSError, ValueError, AttributeError):
        return None
    if previous and _relative(models_dir, Path(previous)) is not None and Path(previous).is_file():
        activate_model(models_dir, Path(previous))
        return Path(previous)
    activate_model(models_dir, None)  # the previous one was the shipped base model
    return None


def learned_from(card: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(person ids, older display names) of the people whose photos shaped a model."""
    training = card.get("training", {}) if isinstance(card, dict) else {}
    if not isinstance(training, dict):
        return set(), set()
    return ({str(i) for i in training.get(TRAINED_ON_IDS, []) or []},
            {str(n) for n in training.get(TRAINED_ON, []) or []})


def models_trained_on(models_dir: str | Path, person_id: str | None,
                      names: Iterable[str] = ()) -> list[Path]:
    """Saved models whose weights learned from this person: by stable id, or, for cards
    written before ids existed, by any of ``names`` (ignoring case)."""
    from model.naming import name_key

    keys = {name_key(n) for n in names}
    found = []
    for model_file in model_units(models_dir):
        ids, old_names = learned_from(read_card(model_file) or {})
        if (person_id and person_id in ids) or keys & {name_key(n) for n in old_names}:
            found.append(model_file)
    return found


def forget_person_models(models_dir: str | Path, person_id: str | None,
                         names: Iterable[str] = ()) -> list[Path]:
    """Delete every saved model that learned from this person (model and card together).

    A network fine-tuned on someone's face keeps a trace of it in its weights; deleting a
    person deletes that too. If the active model goes, the shipped base model becomes
    active again. Returns the deleted model files.
    """
    doomed = models_trained_on(models_dir, person_id, names)
    if not doomed:
        return []
    active = finetuned_model_path(models_dir)
    if active is not None and active in doomed:
        activate_model(models_dir, None)
    for model_file in doomed:
        delete_unit(Path(models_dir), model_file)
    return doomed


def unit_name(model_file: Path) -> str:
    """How a saved model is called: its unit folder's name (or an older file's name)."""
    return model_file.parent.name if model_file.name == MODEL_FILE else model_file.name


def delete_unit(models_dir: Path, model_file: Path) -> None:
    """Delete one saved model with its card (its unit folder, or an older flat pair)."""
    if model_file.name == MODEL_FILE and model_file.parent.parent == models_dir:
        files.remove_tree(model_file.parent)
    else:
        model_file.unlink(missing_ok=True)
        sidecar_path(model_file).unlink(missing_ok=True)


def sweep(models_dir: str | Path) -> list[Path]:
    """Start-up clean-up: temporaries of writers that died, and older flat models whose
    card never got written (a crash between the two files of the older layout)."""
    models_dir = Path(models_dir)
    removed = files.sweep_temporaries(models_dir, depth=1)
    if models_dir.is_dir():
        for entry in models_dir.glob("*.keras"):
            if not files.is_hidden(entry) and not sidecar_path(entry).exists():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
        for entry in models_dir.iterdir():
            if entry.is_dir() and not files.is_hidden(entry) and not (
                    (entry / MODEL_FILE).is_file() and sidecar_path(entry / MODEL_FILE).is_file()):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _fresh_unit(models_dir: Path, prefix: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = models_dir / f"{prefix}-{stamp}"
    n = 1
    while target.exists() or target.with_suffix(".keras").exists():
        n += 1
        target = models_dir / f"{prefix}-{stamp}-{n}"
    return target


def _relative(models_dir: Path, path: Path) -> str | None:
    """``path`` relative to ``models_dir`` when it lies inside it (at most one folder deep)."""
    try:
        relative = path.resolve().relative_to(models_dir.resolve())
    except (ValueError, OSError):
        return None
    return relative.as_posix() if 1 <= len(relative.parts) <= 2 else None


def _inside(models_dir: Path, name: str) -> Path | None:
    candidate = models_dir / name
    return candidate if _relative(models_dir, candidate) is not None else None
