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


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_captions_of_faces_side_by_side_never_cover_each_other():
    """Three people in a row with long names (the live page with a group): every caption
    stays inside the picture, next to its own face, and no two cover each other."""
    from web_app.common import caption_layout

    size, gap, band = (640, 480), 3, (300, 30)
    boxes = [(60, 190, 95, 120), (272, 190, 95, 120), (484, 190, 95, 120)]
    spots = caption_layout(boxes, [band] * 3, size, gap)
    rects = [(x, y, x + band[0], y + band[1]) for x, y in spots]
    for i, rect in enumerate(rects):
        assert rect[0] >= 0 and rect[2] < size[0] and rect[1] >= 0 and rect[3] < size[1]
        assert not any(_overlap(rect, other) for other in rects[i + 1:])
        x, y, w, h = boxes[i]
        # Over or under its own face, at most one caption's height further than the nearest
        # spot: a teacher can tell whose name it is.
        assert rect[0] < x + w and x < rect[2]
        step = band[1] + gap
        assert y - gap - 2 * step <= rect[1] < y - gap or y + h + gap <= rect[1] <= y + h + gap + step
    # The first caption keeps the usual place, above its face.
    assert spots[0] == (60, 190 - band[1] - gap)


def test_a_caption_steps_aside_from_another_face():
    """A small face just above a bigger one (a child in front of the teacher): the lower
    face's caption goes below it rather than over the face above."""
    from web_app.common import caption_layout

    boxes = [(100, 40, 80, 100), (100, 150, 80, 100)]
    spots = caption_layout(boxes, [(120, 24), (120, 24)], (400, 400), 3)
    above_face = (100, 40, 180, 140)
    lower = (spots[1][0], spots[1][1], spots[1][0] + 120, spots[1][1] + 24)
    assert not _overlap(lower, above_face)
    assert lower[1] == 150 + 100 + 3  # just below its own face


def test_faces_without_captions_get_no_spot():
    from web_app.common import caption_layout

    assert caption_layout([(0, 0, 10, 10), (50, 50, 10, 10)], [None, (20, 8)], (100, 100), 2) \
        == [None, (50, 40)]


def test_the_camera_is_asked_for_preferences_only():
    """A hard bound (min, max, exact) that a camera's native modes do not meet makes
    Firefox refuse the whole stream: the live pages must state wishes, not demands."""
    from web_app.common import VIDEO_CONSTRAINTS

    video = VIDEO_CONSTRAINTS["video"]
    assert VIDEO_CONSTRAINTS["audio"] is False
    assert video["frameRate"] == {"ideal": 15}
    assert all(set(value) == {"ideal"} for value in video.values()), video
