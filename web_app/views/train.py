"""Train (teacher): fine-tune the network on the enrolled faces, then keep or roll back.

Training runs in a background thread owned by one shared ``TrainingJob``, so this
page (and everyone else's) stays responsive; the page polls the job's snapshot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from model.core.registry import restore_previous
from web_app.common import get_engine, model_summary, plain, require_admin
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


def show_result(result: Any) -> None:
    """Held-out figures before/after, the new threshold and the loss per epoch."""
    (st.success if result.replaced else st.info)(plain(result.message))
    before, after = result.before, result.after
    if before is not None and after is not None:
        pair, ident, threshold = st.columns(3)
        pair.metric("Held-out pair accuracy", f"{after.pair_accuracy:.3f}",
                    delta=f"{after.pair_accuracy - before.pair_accuracy:+.3f} "
                          f"(was {before.pair_accuracy:.3f})")
        ident.metric("Held-out identification", f"{after.identification:.3f}",
                     delta=f"{after.identification - before.identification:+.3f} "
                           f"(was {before.identification:.3f})")
        threshold.metric("Held-out pair cut (cosine)", f"{after.threshold:.3f}",
                         delta=f"was {before.threshold:.3f}", delta_color="off",
                         help="The cosine that best separates held-out same/different pairs. "
                              "Naming still follows the open-set rule, re-derived for the gallery.")
        st.caption(f"{result.people} people, {result.train_crops} training photos, "
                   f"{result.held_out_crops} held-out photos, {result.epochs} epochs, "
                   f"{result.seconds:.0f} s.")
    if result.losses:
        st.caption("Training loss per epoch (lower is better)")
        st.line_chart(pd.DataFrame({"epoch": range(1, len(result.losses) + 1),
                                    "loss": result.losses}), x="epoch", y="loss")
    curves = [(label, figures.roc) for label, figures in
              (("before", result.before), ("after", result.after)) if figures is not None]
    if any(roc for _, roc in curves):
        st.caption("ROC on held-out pairs, before and after: higher and further left is better.")
        st.line_chart(pd.DataFrame(
            [{"model": label, "False accept rate": far, "True accept rate": tar}
             for label, roc in curves for far, tar in roc]),
            x="False accept rate", y="True accept rate", color="model")

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
    from model.learning import finetune  # written alongside the app; absent in older installs
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
    def run(progress: Any) -> Any:
        # Starts from the active model (else the shipped base); activates the new one
        # only when the held-out figures did not get worse.
        result = finetune.finetune_gallery(settings.gallery_dir, None, settings.models_dir,
                                           progress=progress)
        if result.replaced:
            engine.reload_model()  # every session switches to the new model at once
        return result

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
        st.progress(fraction, text=plain(state.message) if state.message else "Training…")
    losses = [p for p in state.points if p.loss is not None]
    if losses:
        st.caption("Training loss (lower is better)")
        st.line_chart(pd.DataFrame({"step": range(1, len(losses) + 1),
                                    "loss": [p.loss for p in losses]}), x="step", y="loss")
    if not state.running:
        if state.error:
            st.error(f"Fine-tuning failed: {plain(state.error)}")
        st.rerun(scope="app")  # leave the fragment: the keep / roll back buttons appear


snapshot = job.snapshot()
if snapshot.running:
    progress_panel()
elif snapshot.started_at is not None:
    if snapshot.error:
        st.error(f"Fine-tuning failed: {plain(snapshot.error)}")
    elif snapshot.result is not None:
        result = snapshot.result
        show_result(result)
        if result.replaced:
            keep, roll_back = st.columns(2)
            if keep.button("Keep the new model", type="primary"):
                job.clear_result()
                st.session_state["train_message"] = "Keeping the fine-tuned model."
                st.rerun()
            if roll_back.button("Roll back to the previous model"):
                restore_previous(settings.models_dir)
                engine.reload_model()
                job.clear_result()
                st.session_state["train_message"] = "Rolled back to the previous model."
                st.rerun()
        elif st.button("OK"):
            job.clear_result()
            st.rerun()
if message := st.session_state.pop("train_message", None):
    st.success(message)
