"""Command line: ``python -m model <command>``.

Exit codes: 0 success; 2 a user error (bad file, no face, unknown person, bad
name), with a one-line message on stderr and no traceback; 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from model.errors import FaceAttendanceError
from model.settings import ENV_GALLERY, get_settings

EXIT_OK, EXIT_UNEXPECTED, EXIT_USER = 0, 1, 2


class UserError(Exception):
    """Raised inside a command to end it with exit code 2 and this message."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if getattr(args, "gallery", None):
        os.environ[ENV_GALLERY] = str(Path(args.gallery).resolve())
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except (FaceAttendanceError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model",
        description="Face attendance: enroll people, then verify or identify faces in photos.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gallery", metavar="DIR",
                        help=f"gallery folder (default: $ {ENV_GALLERY} or <data>/gallery)")
    common.add_argument("--model", metavar="FILE.keras",
                        help="model to use (default: the active fine-tuned model, else the shipped base)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("enroll", parents=[common], help="add a person from photos of their face")
    p.add_argument("--name", required=True, help='the person\'s name, e.g. "Ada Lovelace"')
    p.add_argument("--consent", action="store_true",
                   help="the person agreed to have their face stored (required)")
    p.add_argument("photos", nargs="+", help="photos showing exactly this one person")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_cmd_enroll)

    p = sub.add_parser("identify", parents=[common], help="name every face in photos")
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per photo, one per line")
    p.set_defaults(handler=_cmd_identify)

    p = sub.add_parser("verify", parents=[common],
                       help="same person? two photos, or a photo and --person")
    p.add_argument("photos", nargs="+", help="two photos, or one photo with --person")
    p.add_argument("--person", help="an enrolled person to check the photo against")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("people", parents=[common], help="list enrolled people")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_people)

    p = sub.add_parser("remove", parents=[common],
                       help="delete a person: their photos and every cached trace of their face")
    p.add_argument("name")
    p.set_defaults(handler=_cmd_remove)

    _add_training_commands(sub, common, argv)
    return parser


TRAINING_COMMANDS = {
    # command: (module, add-arguments function, run function, help)
    "train": ("model.training", "add_train_arguments", "run_train",
              "train a network on LFW (DevTrain people only)"),
    "evaluate": ("model.evaluation", "add_evaluate_arguments", "run_evaluate",
                 "evaluate a model on LFW pairsDevTest and the identification benchmark"),
    "finetune": ("model.finetune", "add_finetune_arguments", "run_finetune",
                 "fine-tune the network on the enrolled gallery"),
}


def _add_training_commands(sub: Any, common: argparse.ArgumentParser,
                           argv: Sequence[str] | None) -> None:
    """Training commands live with the training code, imported only when one is run
    (importing it loads TensorFlow, which every other command can do without)."""
    import importlib

    words = list(sys.argv[1:] if argv is None else argv)
    for command, (module_name, add_name, run_name, help_text) in TRAINING_COMMANDS.items():
        p = sub.add_parser(command, parents=[common], help=help_text, conflict_handler="resolve")
        if command not in words:
            continue
        from model.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
        module = importlib.import_module(module_name)
        getattr(module, add_name)(p)
        p.set_defaults(handler=getattr(module, run_name))


def _engine(args: argparse.Namespace) -> Any:
    from model.api import FaceAttendance
    from model.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()

    return FaceAttendance.open(get_settings(), model_path=args.model)


def _untrained_note(engine: Any) -> str | None:
    if engine.recognizer.trained:
        return None
    return ("note: the network is UNTRAINED (no trained model found), so scores are "
            "meaningless; see README: python -m model train")


def _cmd_enroll(args: argparse.Namespace) -> int:
    from model.naming import normalize_name

    name = normalize_name(args.name)  # refuse a bad name before loading anything
    if not args.consent:
        raise UserError("consent is required: pass --consent once the person has agreed to "
                        "have their face stored. Nothing was stored.")
    engine = _engine(args)
    report = engine.enroll_person(name, args.photos, consent=True, labels=args.photos)
    if args.json:
        print(json.dumps({
            "name": report.name, "saved": [str(p) for p in report.saved],
            "rejected": [{"image": label, "error": why} for label, why in report.rejected],
            "similar_to": [[n, round(s, 4)] for n, s in report.similar_to]}, ensure_ascii=False))
    else:
        for _label, why in report.rejected:
            print(f"refused: {why}", file=sys.stderr)
        if report.saved:
            total = engine.gallery.person(report.name).image_count
            print(f"enrolled {report.name}: {len(report.saved)} photo(s) saved, {total} in all")
        for other, score in report.similar_to:
            print(f"warning: these photos already match {other} (score {score:.2f}); "
                  "check this is not the same person enrolled twice", file=sys.stderr)
    if not report.saved:
        raise UserError(f"nothing was stored for {report.name}: no photo had exactly one usable face.")
    return EXIT_USER if report.rejected else EXIT_OK


def _cmd_identify(args: argparse.Namespace) -> int:
    from model.images import load_image

    engine = _engine(args)
    note = _untrained_note(engine)
    if note:
        print(note, file=sys.stderr)
    failed = False
    for photo in args.photos:
        try:
            matches = engine.identify_faces(load_image(photo, label=photo))
        except FaceAttendanceError as exc:
            failed = True
            if args.json:
                print(json.dumps({"image": photo, "error": str(exc)}, ensure_ascii=False), flush=True)
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            faces = [{"box": list(m.box), "name": m.name, "score": round(m.score, 4),
                      "candidates": [[n, s] for n, s in m.candidates]} for m in matches]
            print(json.dumps({"image": photo, "faces": faces}, ensure_ascii=False), flush=True)
        else:
            if not matches:
                print(f"{photo}: no face found")
            for m in matches:
                who = m.name if m.name is not None else "unknown"
                print(f"{photo}: {who} (score {m.score:.2f}, box {m.box})")
    return EXIT_USER if failed else EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    engine_needed = len(args.photos) == 2 and not args.person or len(args.photos) == 1 and args.person
    if not engine_needed:
        raise UserError("verify takes two photos, or one photo and --person NAME.")
    engine = _engine(args)
    if args.person:
        result = engine.verify_person(args.photos[0], args.person)
    else:
        result = engine.verify_faces(args.photos[0], args.photos[1])
    if args.json:
        print(json.dumps({"same": result.same, "score": round(result.score, 4),
                          "threshold": round(result.threshold, 4)}))
    else:
        verdict = "same person" if result.same else "different people"
        print(f"{verdict} (score {result.score:.2f}, threshold {result.threshold:.2f})")
    return EXIT_OK


def _cmd_people(args: argparse.Namespace) -> int:
    from model.gallery import Gallery
    from model.recognizer import active_model_path

    settings = get_settings()
    people = Gallery(settings.gallery_dir).people()
    model_path = Path(args.model) if args.model else active_model_path(settings)
    model_label = str(model_path) if model_path else "UNTRAINED (no trained model found)"
    if args.json:
        print(json.dumps({"gallery": str(settings.gallery_dir), "model": model_label, "people": [
            {"name": p.name, "images": p.image_count, "enrolled_at": p.enrolled_at.isoformat(),
             "consent": p.consent} for p in people]}, ensure_ascii=False))
        return EXIT_OK
    print(f"gallery: {settings.gallery_dir}")
    print(f"model:   {model_label}")
    if not people:
        print("nobody is enrolled yet")
    for p in people:
        print(f"{p.name}\t{p.image_count} image(s)\tenrolled {p.enrolled_at:%Y-%m-%d}")
    return EXIT_OK


def _cmd_remove(args: argparse.Namespace) -> int:
    from model.finetune import forget_person_models
    from model.gallery import Gallery

    settings = get_settings()
    gallery = Gallery(settings.gallery_dir)
    name = gallery.person(args.name).name
    gallery.remove_person(name)
    print(f"removed {name}: every photo and cached embedding of their face was deleted")
    for model_file in forget_person_models(settings.models_dir, name):
        print(f"deleted {model_file.name}: it was fine-tuned on their photos")
    return EXIT_OK


def run() -> None:
    try:
        code = main()
    except SystemExit:
        raise
    except Exception as exc:
        print(f"unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = EXIT_UNEXPECTED
    sys.exit(code)
