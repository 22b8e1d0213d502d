"""Pure helpers of the app (no Streamlit script run)."""


def test_model_figures_reads_the_nested_model_card():
    from web_app.common import model_figures

    card = {"figures": {"clean": {"pairs_devtest": {"accuracy": 0.863, "auc": 0.93846},
                                  "identification_30x5": {"named": 0.5, "false_accept_rate": 0.035}},
                        "shifted": {"identification_30x5": {"named": 0.25, "false_accept_rate": 0.01}}}}
    assert model_figures(card) == {
        "LFW pair accuracy": "86.3%", "LFW ROC AUC": "0.938",
        "Class of 30: named correctly": "50.0%", "Class of 30: strangers accepted": "3.5%",
        "Poor camera: named": "25.0%", "Poor camera: strangers": "1.0%"}
    assert model_figures({}) == {} and model_figures(None) == {}


def test_model_figures_of_a_fine_tuned_model_say_which_figures_are_the_base_models():
    from web_app.common import model_figures

    card = {"kind": "finetuned",
            "figures": {"clean": {"pairs_devtest": {"accuracy": 0.863}},
                        "held_out_after": {"identification": 0.9}}}
    assert model_figures(card) == {"LFW pair accuracy (base model)": "86.3%",
                                   "This class, held-out: right person first": "90.0%"}


def test_a_label_near_the_right_edge_stays_inside_the_picture():
    """A face at the right edge of the frame: its label is shifted left, not cut off."""
    import numpy as np

    from web_app.common import BoxLabel, draw_boxes

    frame = np.zeros((120, 200, 3), np.uint8)
    colour = (0, 200, 0)
    drawn = draw_boxes(frame, [BoxLabel((170, 60, 28, 40), "Eileen Collins 97%", colour)])
    label_rows = drawn[:60]
    filled = np.all(label_rows == colour, axis=-1)
    columns = np.flatnonzero(filled.any(axis=0))
    # The label band starts left of the box (it was drawn from x=170 and ran off the edge).
    assert columns.size and columns[0] < 170
    assert columns[-1] - columns[0] > 60  # the whole text fits, not a clipped 30-px stub


def test_script_runs_leave_the_keras_session_alone(monkeypatch):
    """Streamlit clears Keras' session after every script run, which threw away
    TensorFlow's kernel cache every second while the live camera ran (issue 10)."""
    import keras
    from streamlit.runtime.scriptrunner import script_runner

    from web_app.common import keep_keras_state

    # A Streamlit upgrade that renames the hook must fail here, not slow the camera down.
    assert "_clean_problem_modules" in script_runner.ScriptRunner._run_script.__code__.co_names
    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(1))
    # Streamlit's own hook, even when an earlier test ran the app (which replaced it).
    current = script_runner._clean_problem_modules
    monkeypatch.setattr(script_runner, "_clean_problem_modules",
                        getattr(current, "streamlit_original", current))
    script_runner._clean_problem_modules()
    assert cleared == [1]  # what Streamlit does on its own
    keep_keras_state()
    script_runner._clean_problem_modules()
    assert cleared == [1]
