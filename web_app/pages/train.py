"""Train (teacher): fine-tune the network on the enrolled faces, then keep or roll back.

Training runs in a background thread owned by one shared ``TrainingJob``, so this
page (and everyone else's) stays responsive; the page polls the job's snapshot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from model.recognizer import active_model_path, set_active_model
from web_app.common import get_engine, model_summary, require_admin
from web_app.training_job import TrainingJob

#: Fine-tuning needs people to tell apart and several photos of each.
MIN_PEOPLE = 2
MIN_PHOTOS_PER_PERSON = 3
#: How often the page refreshes while training runs (seconds).
REFRESH_S = 1.0


@st.cache_resource
def training_job() -> TrainingJob:
    """The one fine-tuning job of this app process (shared by every browser session)."""
    return TrainingJob()


def figure(result: Any, *names: str) -> Any:
    """The first of ``names`` that ``result`` has (as attribute or key), else None."""
    for name in names:
        value = result.get(name) if isinstance(result, dict) else getattr(result, name, None)
        if value is not None:
            return value
    return None


def show_result(result: Any) -> None:
    before = figure(result, "before_accuracy", "accuracy_before", "base_accuracy")
    after = figure(result, "after_accuracy", "accuracy_after", "accuracy")
    threshold = figure(result, "threshold", "new_threshold")
    columns = st.columns(3)
    if before is not None:
        columns[0].metric("Held-out accuracy before", f"{float(before):.3f}")
    if after is not None:
        columns[1].metric("Held-out accuracy after", f"{float(after):.3f}",
                          delta=None if before is None else f"{float(after) - float(before):+.3f}")
    if threshold is not None:
        columns[2].metric("New threshold", f"{float(threshold):.3f}")
    roc = figure(result, "roc", "roc_points", "roc_after")
    if roc is not None:
        frame = _roc_frame(roc)
        if frame is not None:
            st.caption("ROC curve on held-out pairs of your class: higher and further left is "
                       "better.")
            st.line_chart(frame, x="False accept rate", y="True accept rate")


def _roc_frame(roc: Any) -> pd.DataFrame | None:
    if isinstance(roc, dict):
        fpr, tpr = roc.get("fpr"), roc.get("tpr")
    else:
        try:
            fpr, tpr = zip(*roc, strict=False)  # [(fpr, tpr), ...]
        except (TypeError, ValueError):
            return None
    if fpr is None or tpr is None:
        return None
    return pd.DataFrame({"False accept rate": list(fpr), "True accept rate": list(tpr)})


st.title("Train on your class")
require_admin()
engine = get_engine()
settings = engine.settings
job = training_job()

st.markdown(f"Active model: {model_summary(engine.recognizer)}.")
st.write("Fine-tuning adapts the network to the faces enrolled here (lighting, camera, ages). "
         "Some photos of each person are held back to measure accuracy before and after; you "
         "then keep the new model or roll back.")

try:
    from model import finetune  # written alongside the app; absent in older installs
except ImportError:
    finetune = None  # type: ignore[assignment]

people = engine.gallery.people()
enough = [p for p in people if p.image_count >= MIN_PHOTOS_PER_PERSON]
snapshot = job.snapshot()

if finetune is None:
    st.info("Fine-tuning is not available in this version of the app.")
elif len(enough) < MIN_PEOPLE and not snapshot.running and snapshot.result is None:
    st.info(f"Fine-tuning needs at least {MIN_PEOPLE} people with {MIN_PHOTOS_PER_PERSON} or "
            f"more photos each; {len(enough)} have enough so far.")
elif st.button("Start fine-tuning", type="primary", disabled=snapshot.running):
    base = active_model_path(settings) or settings.base_model_path

    def run(progress: Any) -> Any:
        return finetune.finetune_gallery(settings.gallery_dir, base, settings.models_dir,
                                         progress=progress)

    if not job.start(run):
        st.warning("A fine-tuning run is already going.")
    st.rerun()


@st.fragment(run_every=REFRESH_S if snapshot.running else None)
def progress_panel() -> None:
    state = job.snapshot()
    if state.started_at is None:
        return
    if state.running:
        last = state.points[-1] if state.points else None
        fraction = min(1.0, last.done / last.total) if last and last.total else 0.0
        st.progress(fraction, text=state.message or "Training…")
    losses = [p for p in state.points if p.loss is not None]
    if losses:
        st.caption("Training loss (lower is better)")
        st.line_chart(pd.DataFrame({"step": range(1, len(losses) + 1),
                                    "loss": [p.loss for p in losses]}), x="step", y="loss")
    if not state.running:
        if state.error:
            st.error(f"Fine-tuning failed: {state.error}")
        elif state.result is not None:
            st.success("Fine-tuning finished.")
            show_result(state.result)
        st.rerun(scope="app")  # leave the fragment: the keep / roll back buttons appear


snapshot = job.snapshot()
if snapshot.running:
    progress_panel()
elif snapshot.started_at is not None:
    if snapshot.error:
        st.error(f"Fine-tuning failed: {snapshot.error}")
    elif snapshot.result is not None:
        show_result(snapshot.result)
        model_path = figure(snapshot.result, "model_path", "path")
        keep, roll_back = st.columns(2)
        if keep.button("Keep the new model", type="primary", disabled=model_path is None):
            set_active_model(model_path, settings)
            engine.reload_model()
            job.clear_result()
            st.session_state["train_message"] = "The fine-tuned model is now active."
            st.rerun()
        if roll_back.button("Roll back"):
            job.clear_result()
            st.session_state["train_message"] = "Kept the previous model."
            st.rerun()
if message := st.session_state.pop("train_message", None):
    st.success(message)
