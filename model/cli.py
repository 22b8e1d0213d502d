"""Command line: ``python -m model <command>``.

Exit codes: 0 success; 2 a user error (bad file, no face, unknown person, bad
name), with a one-line message on stderr and no traceback; 1 anything unexpected.
``enroll`` and ``import`` also exit 3 when they stored some photos and refused others
(2 then means nothing was stored), so a script can tell the two apart.
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
#: enroll and import: something was stored, something was refused (said on stderr/stdout).
EXIT_PARTLY = 3


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

    p = sub.add_parser(
        "enroll", parents=[common], help="add a person from photos of their face",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n  0  every photo was stored\n"
               "  3  some photos were stored, the others refused (each named, with why)\n"
               "  2  nothing was stored: no photo had exactly one usable face, no --consent, "
               "a bad\n     name, or the photos do not look like the person enrolled under "
               "this name\n"
               "  1  anything unexpected")
    p.add_argument("--name", required=True, help='the person\'s name, e.g. "Ada Lovelace"')
    p.add_argument("--consent", action="store_true",
                   help="the person agreed to have their face stored (required)")
    p.add_argument("--student-id", metavar="ID",
                   help="tells two students with the same name apart (shown as 'Name (ID)')")
    p.add_argument("--add-to-existing", action="store_true",
                   help="add the photos to the enrolled person of this name even when they do "
                        "not look alike (without it such photos are refused)")
    p.add_argument("photos", nargs="+", help="photos showing exactly this one person")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_cmd_enroll)

    p = sub.add_parser(
        "import", parents=[common],
        help="enroll everyone from a folder (or .zip) of folders named after each person",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status:\n  0  every person folder and every photo in it was stored\n"
               "  3  some were stored; a folder, a photo or an entry was refused (listed)\n"
               "  2  nothing was stored, or the folder, consent or class name was refused\n"
               "  1  anything unexpected")
    p.add_argument("dir", metavar="DIR",
                   help="a folder with one sub-folder of photos per person, named after them "
                        "(an underscore stands for a space), or a .zip of such folders")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help='put everyone enrolled on this class\'s roster (made when new), e.g. "Maths 7B"')
    p.add_argument("--consent", action="store_true",
                   help="every person in the folders agreed to have their face stored (required)")
    p.add_argument("--add-to-existing", action="store_true",
                   help="add a folder's photos to the enrolled person of that name even when "
                        "they do not look alike (without it that folder stores nothing)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=_cmd_import)

    p = sub.add_parser(
        "cluster", parents=[common],
        help="group the faces of a few group photos (a folder or .zip) by person",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Every usable face of every photo, grouped by person: two faces of one "
                    "photo are\nnever in one group; a face that fits no group well enough is "
                    "listed as 'not sure';\nfaces too small or blurry are reported, not grouped. "
                    "Nothing is stored.",
        epilog="exit status:\n  0  every face was grouped\n"
               "  3  some faces were grouped; others are not sure or were refused (listed)\n"
               "  2  no usable face, or the folder or zip cannot be read\n"
               "  1  anything unexpected")
    p.add_argument("dir", metavar="DIR|ZIP", help="a folder or .zip of group photos")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: {"photos", "groups", "faces", "unsure", "refused", '
                        '"threshold"}')
    p.set_defaults(handler=_cmd_cluster)

    p = sub.add_parser("identify", parents=[common], help="name every face in photos")
    p.add_argument("photos", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per photo, one per line")
    p.set_defaults(handler=_cmd_identify)

    p = sub.add_parser(
        "verify", parents=[common], help="same person? two photos, or a photo and --person",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Two photos: 'same person', 'probably the same person - check' or "
                    "'different people'.\nA photo and --person: 'same person' or 'different "
                    "people'.\nA photo with several faces is answered for its largest, most "
                    "central face (a note says so).",
        epilog="exit status:\n  0  an answer was printed (whichever it is)\n"
               "  2  a photo could not be read or shows no face, the person is not enrolled, "
               "or the\n     arguments are wrong (one line on stderr)\n"
               "  1  anything unexpected")
    p.add_argument("photos", nargs="+", help="two photos, or one photo with --person")
    p.add_argument("--person", help="an enrolled person to check the photo against")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: {"verdict", "same", "score", "normalised", '
                        '"threshold", "maybe_threshold", "note", "boxes"}')
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("people", parents=[common], help="list enrolled people")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_people)

    p = sub.add_parser("rename", parents=[common],
                       help="rename a person; their attendance records and class rosters follow")
    p.add_argument("old", metavar="OLD", help="the name as enrolled (any case)")
    p.add_argument("new", metavar="NEW", help="the new name")
    p.add_argument("--student-id", metavar="ID",
                   help='give them this student id ("" removes it; default: keep theirs)')
    p.set_defaults(handler=_cmd_rename)

    p = sub.add_parser("remove", parents=[common],
                       help="delete a person: their photos and every cached trace of their face")
    p.add_argument("name")
    p.add_argument("--forget-attendance", action="store_true",
                   help="also delete every attendance record of this person")
    p.set_defaults(handler=_cmd_remove)

    p = sub.add_parser("roster", parents=[common],
                       help="put the people of a roster CSV on a class (no photos needed)")
    p.add_argument("csv", metavar="CSV",
                   help="one name per line, a student id after a comma if you use them")
    p.add_argument("--class", dest="class_name", metavar="NAME", required=True,
                   help='the class (made when new), e.g. "Maths 7B"')
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=_cmd_roster)

    p = sub.add_parser("classes", parents=[common],
                       help="list classes: roster size, late-after time, sessions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_classes)

    p = sub.add_parser("migrate",
                       help="copy this computer's attendance register, gallery and fine-tuned "
                            "models into a shared PostgreSQL database (safe to run twice)")
    p.add_argument("--to", dest="url", metavar="URL", required=True,
                   help="postgresql://user:password@host:5432/database")
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="the SQLite register (default: <data>/attendance.sqlite3)")
    p.add_argument("--gallery", metavar="DIR",
                   help="the gallery of person folders (default: <data>/gallery); its "
                        "fine-tuned models come from <data>/models")
    p.set_defaults(handler=_cmd_migrate)

    p = sub.add_parser("passcode-hash",
                       help="hash an admin passcode for .streamlit/secrets.toml (asks twice)")
    p.add_argument("--iterations", type=int, default=None,
                   help="PBKDF2 rounds (default 600000; at least 200000)")
    p.set_defaults(handler=_cmd_passcode_hash)

    _add_training_commands(sub, common, argv)
    return parser


def _add_training_commands(sub: Any, common: argparse.ArgumentParser,
                           argv: Sequence[str] | None) -> None:
    """Training commands import TensorFlow and the training code only when one is run
    (every other command can do without)."""
    words = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "distill": (_distill_arguments, _cmd_distill,
                    "train our network by distilling the teacher on LFW DevTrain (training extras)"),
        "train": (_train_arguments, _cmd_train, "train a baseline network (compact, koch) on LFW DevTrain"),
        "evaluate": (_evaluate_arguments, _cmd_evaluate,
                     "figures on LFW DevTest, clean and under a shifted camera, with the app's rule"),
        "finetune": (_finetune_arguments, _cmd_finetune, "fine-tune the network on the enrolled gallery"),
        "calibrate": (_calibrate_arguments, _cmd_calibrate,
                      "choose a model's thresholds (photos, 1:1, live tracks) on held-out LFW DevTrain "
                      "people and write them into its card"),
    }
    for command, (add_arguments, handler, help_text) in commands.items():
        p = sub.add_parser(command, parents=[common], help=help_text, conflict_handler="resolve")
        if command not in words:
            continue
        from model.core.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
        add_arguments(p)
        p.set_defaults(handler=handler)


# ----- training commands ---------------------------------------------------------------

def _distill_arguments(parser: argparse.ArgumentParser) -> None:
    from model.learning.distill import DistillConfig

    d = DistillConfig()
    parser.add_argument("--output", type=Path, default=None,
                        help="where to save the .keras (default: <data>/models/student-lfw.keras)")
    parser.add_argument("--time-budget", type=float, default=d.time_budget_s, metavar="SECONDS",
                        help="training wall-clock time; the learning rate anneals over it")
    parser.add_argument("--input-size", type=int, default=d.input_size)
    parser.add_argument("--width", type=int, default=d.width)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="resume/checkpoint folder (default: <cache>/checkpoints/distill)")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: setting)")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the DevTest figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate)
    parser.add_argument("--look-alike-share", type=float, default=d.look_alike_share,
                        help="share of each batch given to the teacher's nearest other-person photos "
                             "(hard look-alike pairs for the relational term; 0-0.5)")
    parser.add_argument("--init-from", type=Path, default=None, metavar="FILE.keras",
                        help="continue training this saved student instead of starting from scratch")


def _cmd_distill(args: argparse.Namespace) -> int:
    from model.learning import lfw
    from model.learning.distill import DistillConfig, distill_model
    from model.learning.teacher import teacher_available

    if not teacher_available():
        raise UserError("the teacher is not installed: pip install -r requirements-train.txt "
                        "(then pip install --no-deps face-recognition==1.3.0), or run make test once.")
    if not lfw.lfw_available(args.lfw):
        raise UserError(f"LFW not found in {args.lfw or lfw.lfw_dir()} (set FACEATT_LFW_DIR).")
    config = DistillConfig(input_size=args.input_size, width=args.width, batch_size=args.batch_size,
                           time_budget_s=args.time_budget, seed=args.seed,
                           learning_rate=args.learning_rate, look_alike_share=args.look_alike_share,
                           init_from=str(args.init_from or ""))
    output = args.output or get_settings().models_dir / "student-lfw.keras"
    result = distill_model(config, output, lfw_root=args.lfw, evaluate=not args.no_evaluate,
                           checkpoint_dir=args.checkpoint_dir or lfw.cache_dir() / "checkpoints" / "distill",
                           progress=lambda message: print(message, flush=True))
    print(json.dumps({"model": str(result.model_path), "match_rule": result.card["match_rule"],
                      "figures": result.card.get("figures", {})}, indent=2))
    return EXIT_OK


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    from model.core.network import ARCHITECTURES
    from model.learning.training import TrainConfig

    defaults = TrainConfig()
    parser.add_argument("--architecture", choices=ARCHITECTURES, default=defaults.architecture)
    parser.add_argument("--output", type=Path, default=None,
                        help="where to save the .keras (default: <data>/models/<arch>-lfw.keras)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (compact), 16 (koch)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default 2e-3 (compact, AdamW, cosine), 1e-4 (koch, Adam)")
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--margin", type=float, default=defaults.margin)
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="stop training after this many seconds (checked every step)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="resume/checkpoint folder (default: <cache>/checkpoints/<arch>)")
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: setting)")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the DevTest figures")
    parser.add_argument("--seed", type=int, default=0)


def _cmd_train(args: argparse.Namespace) -> int:
    from model.learning import lfw
    from model.learning.training import TrainConfig, TrainProgress, train_model

    koch = args.architecture == "koch"
    config = TrainConfig(
        architecture=args.architecture, epochs=args.epochs,
        batch_size=args.batch_size or (16 if koch else 128),
        learning_rate=args.learning_rate or (1e-4 if koch else 2e-3),
        width=args.width, input_size=args.input_size, margin=args.margin,
        time_budget_s=args.time_budget, seed=args.seed)
    output = args.output or get_settings().models_dir / f"{args.architecture}-lfw.keras"
    checkpoints = args.checkpoint_dir or lfw.cache_dir() / "checkpoints" / args.architecture

    def show(event: TrainProgress) -> None:
        print(f"[{event.stage}] {event.message}", flush=True)

    result = train_model(config, output, lfw_root=args.lfw, checkpoint_dir=checkpoints,
                         progress=show, evaluate=not args.no_evaluate)
    print(json.dumps({"model": str(result.model_path), "seconds": round(result.seconds, 1),
                      "match_rule": result.card.get("match_rule"),
                      "figures": result.card.get("figures", {})}, indent=2))
    return EXIT_OK


def _calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: setting)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the held-out people (must be the seed the model was distilled with)")
    parser.add_argument("--dry-run", action="store_true", help="print the rule, leave the card alone")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from model.core import files
    from model.core.recognizer import load_recognizer
    from model.core.registry import sidecar_path
    from model.learning import evaluation, lfw
    from model.learning.distill import calibration_people

    if not lfw.lfw_available(args.lfw):
        raise UserError(f"LFW not found in {args.lfw or lfw.lfw_dir()} (set FACEATT_LFW_DIR).")
    if args.model is None:
        raise UserError("name the model to calibrate with --model PATH (its card is rewritten).")
    recognizer = load_recognizer(args.model)
    aligned = lfw.load_aligned_lfw(args.lfw)
    held_out = calibration_people(lfw.people_dev_train(args.lfw), args.seed)
    rows = aligned.rows(sorted(held_out))
    rule, record = evaluation.calibrate_recognizer(recognizer, aligned.crops[rows], aligned.names[rows],
                                                   seed=args.seed, progress=print)
    print(json.dumps({"match_rule": asdict(rule), "match_rule_from": record}, indent=2))
    if not args.dry_run:
        card = {**recognizer.card, "match_rule": asdict(rule),
                "match_rule_from": {**record, "data": "held-out LFW DevTrain people (never trained on)"}}
        meta = sidecar_path(Path(args.model))
        files.atomic_write_bytes(meta, json.dumps(card, indent=2, default=str).encode("utf-8"))
        print(f"wrote the rule into {meta}")
    return EXIT_OK


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lfw", type=Path, default=None, help="LFW folder (default: setting)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--draws", type=int, default=10, help="random draws of the 30x5 variant")
    parser.add_argument("--clean-only", action="store_true", help="skip the shifted-camera figures")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from model.core.recognizer import load_recognizer
    from model.learning import evaluation, lfw

    if not lfw.lfw_available(args.lfw):
        raise UserError(f"LFW not found in {args.lfw or lfw.lfw_dir()} (set FACEATT_LFW_DIR).")
    recognizer = load_recognizer(args.model)
    result = evaluation.evaluate_recognizer(recognizer, lfw_root=args.lfw, draws_30=args.draws,
                                            shifted=not args.clean_only,
                                            progress=None if args.json else print)
    if args.json:
        print(json.dumps(result.as_dict()))
        return EXIT_OK
    rule = recognizer.rule
    print(f"model: {result.model}")
    print(f"rule (chosen on held-out LFW DevTrain people): name at normalised score >= "
          f"{rule.name_threshold:.2f} (or the gallery's adaptive threshold), margin {rule.margin:.2f}; "
          f"1:1 same person at >= {rule.pair_threshold:.2f}")
    for label, c in (("clean", result.clean), ("shifted camera", result.shifted)):
        if c is None:
            continue
        p = c.pairs_devtest
        print(f"[{label}] pairsDevTest ({p.pairs} pairs): accuracy {p.accuracy:.3f} at the rule's pair "
              f"threshold (same person accepted {p.same_accepted:.3f}, different people accepted "
              f"{p.different_accepted:.3f}); AUC {p.auc:.3f} (raw cosine {p.raw_auc:.3f}); "
              f"TAR@FAR=1e-2 {p.tar_at_far_1e_2:.3f}; TAR@FAR=1e-3 {p.tar_at_far_1e_3:.3f}")
        for name, r in (("93x5", c.identification_93x5),
                        (f"30x5 (mean of {c.identification_30x5.draws} classes)", c.identification_30x5)):
            print(f"[{label}] identification {name}: named correctly {r.named:.3f}, wrong name "
                  f"{r.wrong_name:.3f}, ranked first {r.ranked_first:.3f} ({r.queries} queries); "
                  f"strangers accepted {r.false_accept_rate:.3f} of {r.impostors}")
    return EXIT_OK


def _finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, default=None,
                        help="model to start from (default: the active model)")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where versions are saved (default: <data>/models)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--held-out", type=float, default=0.3,
                        help="share of each person's crops held out for the check")
    parser.add_argument("--lfw-benchmark", action="store_true",
                        help="instead: measure before/after on 30-person LFW draws")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from model.learning.finetune import FinetuneProgress, finetune_gallery, lfw_finetune_benchmark

    settings = get_settings()
    if args.lfw_benchmark:
        base = args.base or settings.base_model_path
        print(json.dumps(lfw_finetune_benchmark(base, progress=print), indent=2))
        return EXIT_OK

    def show(event: FinetuneProgress) -> None:
        print(f"[{event.stage}] {event.message}", flush=True)

    result = finetune_gallery(settings.gallery_dir, args.base, args.models_dir, progress=show,
                              held_out_fraction=args.held_out, epochs=args.epochs,
                              learning_rate=args.learning_rate)
    print(result.message)
    if result.before and result.after:
        print(f"held-out pair accuracy {result.before.pair_accuracy:.3f} -> "
              f"{result.after.pair_accuracy:.3f}; identification "
              f"{result.before.identification:.3f} -> {result.after.identification:.3f}; "
              f"{result.seconds:.0f} s")
    return EXIT_OK if result.before is not None else EXIT_USER


def _engine(args: argparse.Namespace) -> Any:
    from model.api import FaceAttendance
    from model.core.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()

    return FaceAttendance.open(get_settings(), model_path=args.model)


def _untrained_note(engine: Any) -> str | None:
    if engine.recognizer.trained:
        return None
    return ("note: the network is UNTRAINED (no trained model found), so scores are "
            "meaningless; see README: python -m model train")


def _cmd_enroll(args: argparse.Namespace) -> int:
    from model.naming import normalize_name, normalize_student_id

    name = normalize_name(args.name)  # refuse a bad name or id before loading anything
    student_id = normalize_student_id(args.student_id)
    if not args.consent:
        raise UserError("consent is required: pass --consent once the person has agreed to "
                        "have their face stored. Nothing was stored.")
    engine = _engine(args)
    report = engine.enroll_person(name, args.photos, consent=True, labels=args.photos,
                                  student_id=student_id, add_to_existing=args.add_to_existing)
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
            print(f"warning: these photos would be named {other} (similarity {score:.3f}); "
                  "check this is not the same person enrolled twice", file=sys.stderr)
    if not report.saved:
        raise UserError(f"nothing was stored for {report.name}: no photo had exactly one usable face.")
    return EXIT_PARTLY if report.rejected else EXIT_OK


def _cmd_import(args: argparse.Namespace) -> int:
    """Enroll every person folder of DIR (or of a zip). Everything that can be refused
    without the network (no consent, a missing folder, no person folder, a bad class
    name) is refused before TensorFlow loads."""
    import zipfile

    from model.school.importing import person_folders

    if not args.consent:
        raise UserError("consent is required: pass --consent once every person in these "
                        "folders has agreed to have their face stored. Nothing was stored.")
    source = Path(args.dir)
    if not source.exists():
        raise UserError(f"{source} does not exist: give a folder holding one folder of photos "
                        "per person, or a .zip of such folders.")
    is_zip = source.is_file()
    if is_zip and not zipfile.is_zipfile(source):
        raise UserError(f"{source} is neither a folder nor a zip archive.")
    if not is_zip:
        person_folders(source)  # raises ImportProblem when it holds no person folder
    if args.class_name is not None:
        _open_class(args.class_name)  # a bad class name is refused now, not after loading

    def show(done: int, total: int, name: str) -> None:
        print(f"[{done + 1}/{total}] {name}", file=sys.stderr, flush=True)

    engine = _engine(args)
    options: dict[str, Any] = {"consent": True, "class_name": args.class_name,
                               "add_to_existing": args.add_to_existing,
                               "progress": None if args.json else show}
    report = (engine.import_zip(source, **options) if is_zip
              else engine.import_folders(source, **options))
    if args.json:
        print(json.dumps({
            "people": [{"name": p.name, "used": p.used,
                        "refused": [{"photo": photo, "why": why} for photo, why in p.refused],
                        "error": p.error} for p in report.people],
            "skipped": [{"entry": entry, "why": why} for entry, why in report.skipped],
            "class": report.class_name}, ensure_ascii=False))
    else:
        for person in report.people:
            if person.ok:
                refused = f", {len(person.refused)} refused" if person.refused else ""
                print(f"{person.name}: {person.used} photo(s) used{refused}")
            else:
                print(f"{person.name}: nothing stored: {person.error}")
            for photo, why in person.refused:
                print(f"    {_refusal(photo, why)}")
        for entry, why in report.skipped:
            print(f"skipped {entry}: {why}")
        attention = len(report.people) - len(report.enrolled)
        photos = f"{report.photos_used} photo" + ("" if report.photos_used == 1 else "s")
        print(f"enrolled {len(report.enrolled)} of {len(report.people)} people ({photos})"
              + (f"; {attention} need attention" if attention else ""))
        if report.class_name and report.enrolled:
            print(f"added to class {report.class_name}")
    if not report.enrolled:
        return EXIT_USER
    partly = bool(report.skipped) or any(not p.ok or p.refused for p in report.people)
    return EXIT_PARTLY if partly else EXIT_OK


def _refusal(photo: str, why: str) -> str:
    """``photo: why``, without naming the photo twice (most reasons already start with it)."""
    return why if why.startswith(f"{photo}:") else f"{photo}: {why}"


def _open_class(name: str) -> Any:
    """The class called ``name``, made when new (as the import would), with the book's
    sentence as a ``UserError`` for a bad name. Needs no network."""
    from model.school.attendance import open_register

    book = open_register(get_settings())
    try:
        return book.find_class(name) or book.create_class(name)
    except ValueError as exc:  # empty, too long, control characters
        raise UserError(str(exc)) from None


def _cmd_cluster(args: argparse.Namespace) -> int:
    """Group the faces of group photos by person (``model.group_enroll``); stores nothing."""
    from model.group_enroll import group_photo_files, photo_files

    source = Path(args.dir)
    if not source.exists():
        raise UserError(f"{source} does not exist: give a folder or a .zip of group photos.")
    if source.is_dir():
        photo_files(source)  # raises ImportProblem when it holds no photo
    grouping = group_photo_files(_engine(args), source)
    faces = grouping.faces
    if args.json:
        print(json.dumps({
            "photos": grouping.photos,
            "groups": [list(group) for group in grouping.groups],
            "faces": [{"photo": f.photo, "box": list(f.box), "group": f.group,
                       "affinity": None if f.affinity != f.affinity else round(f.affinity, 3),
                       "sure": f.sure} for f in faces],
            "unsure": grouping.unsure,
            "refused": [{"photo": photo, "box": list(box) if box else None, "why": why}
                        for photo, box, why in grouping.refused],
            "threshold": grouping.threshold}, ensure_ascii=False))
    else:
        def where(i: int) -> str:
            x, y, w, h = faces[i].box
            check = "" if faces[i].sure else " (check)"
            return f"{faces[i].photo} at {x},{y} {w}x{h}{check}"

        for number, group in enumerate(grouping.groups, start=1):
            print(f"group {number}: {len(group)} face(s)")
            for i in group:
                print(f"    {where(i)}")
        if grouping.unsure:
            print(f"not sure: {len(grouping.unsure)} face(s)")
            for i in grouping.unsure:
                print(f"    {where(i)}")
        for photo, box, why in grouping.refused:
            at = f" face at {box[0]},{box[1]} {box[2]}x{box[3]}" if box else ""
            print(f"refused {photo}{at}: {why}")
        print(f"{len(faces)} usable face(s) in {len(grouping.photos)} photo(s): "
              f"{len(grouping.groups)} group(s), {len(grouping.unsure)} not sure, "
              f"{len(grouping.refused)} refused")
    if not faces:
        return EXIT_USER
    return EXIT_PARTLY if grouping.unsure or grouping.refused else EXIT_OK


def _cmd_identify(args: argparse.Namespace) -> int:
    from model.core.images import load_image

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
            faces = [{"box": list(m.box), "name": m.name, "score": round(m.score, 6),
                      "normalised": round(m.normalised, 3), "threshold": round(m.threshold, 3),
                      "reason": m.reason or None,
                      "candidates": [[n, s] for n, s in m.candidates]} for m in matches]
            print(json.dumps({"image": photo, "faces": faces}, ensure_ascii=False), flush=True)
        else:
            if not matches:
                print(f"{photo}: no face found")
            for m in matches:
                print(f"{photo}: {m.explanation} (cosine {m.score:.4f}, normalised {m.normalised:.2f}, "
                      f"needs {m.threshold:.2f}; box {m.box})")
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
    verdict = result.verdict.value if result.verdict is not None else ""
    maybe = result.maybe_threshold
    if args.json:
        print(json.dumps({"verdict": verdict, "same": result.same,
                          "score": round(result.score, 6),
                          "normalised": round(result.normalised, 3),
                          "threshold": round(result.threshold, 3),
                          "maybe_threshold": None if maybe is None else round(maybe, 3),
                          "note": result.note,
                          "boxes": [list(face.box) for face in result.faces]},
                         ensure_ascii=False))
    else:
        needs = f"same person from {result.threshold:+.2f}"
        if maybe is not None and maybe < result.threshold:
            needs += f", probably from {maybe:+.2f}"
        print(f"{verdict} (normalised {result.normalised:+.2f}; {needs}; "
              f"cosine {result.score:.4f})")
        print(result.explanation)
        if result.note:
            print(f"note: {result.note}")
    return EXIT_OK


def _cmd_people(args: argparse.Namespace) -> int:
    from model.core.registry import active_model_path
    from model.school.gallery import Gallery

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
    from model.api import recover_after_crash, remove_person
    from model.core.registry import unit_name
    from model.school.attendance import open_register
    from model.school.gallery import Gallery

    settings = get_settings()
    gallery = Gallery(settings.gallery_dir)
    recover_after_crash(settings, gallery)
    book = open_register(settings) if args.forget_attendance else None
    removal = remove_person(gallery, settings.models_dir, args.name, forget_attendance=book)
    print(f"removed {removal.name}: {removal.photos} photo(s) and every cached embedding of "
          "their face were deleted")
    for model_file in removal.models:
        print(f"deleted the fine-tuned model {unit_name(model_file)}: it had learned from "
              "their photos")
    if args.forget_attendance:
        print(f"deleted {removal.attendance_rows} attendance record(s)")
    else:
        print("their attendance records were kept (add --forget-attendance to delete them)")
    return EXIT_OK


def _cmd_rename(args: argparse.Namespace) -> int:
    from model.api import rename_person
    from model.school.attendance import open_register
    from model.school.gallery import Gallery

    settings = get_settings()
    gallery = Gallery(settings.gallery_dir)
    old = gallery.person(args.old).name  # raises UnknownPersonError before the book opens
    new = rename_person(gallery, open_register(settings), old, args.new,
                        student_id=args.student_id, keep_student_id=args.student_id is None)
    print(f"renamed {old} to {new}")
    return EXIT_OK


def _cmd_roster(args: argparse.Namespace) -> int:
    from model.api import import_roster
    from model.school.attendance import open_register
    from model.school.gallery import Gallery

    settings = get_settings()
    try:
        data = Path(args.csv).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {args.csv}: {exc.strerror or exc}.") from None
    try:
        report = import_roster(Gallery(settings.gallery_dir),
                               open_register(settings), data, args.class_name)
    except FaceAttendanceError:
        raise
    except ValueError as exc:  # the book refused the class name (empty, too long, ...)
        raise UserError(str(exc)) from None
    school_class = report.school_class
    if args.json:
        print(json.dumps({
            "class": school_class.name, "roster_size": school_class.roster_size,
            "added": report.added, "needs_photos": report.needs_photos,
            "refused": [{"line": line, "why": why} for line, why in report.refused]},
            ensure_ascii=False))
    else:
        for line, why in report.refused:
            print(f"line {line} refused: {why}")
        if report.added:
            print(f"added {len(report.added)} to {school_class.name}: {', '.join(report.added)}")
        else:
            print(f"nobody new: everyone on this roster was already in {school_class.name}")
        print(f"{school_class.name} has {school_class.roster_size} on the roster")
        if report.needs_photos:
            print(f"{len(report.needs_photos)} on the roster still need photos: "
                  f"{', '.join(report.needs_photos)}")
    return EXIT_USER if report.refused else EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    source = Path(args.source) if args.source else settings.attendance_db
    gallery = Path(args.gallery) if args.gallery else settings.gallery_dir
    if not source.is_file() and (args.source or not gallery.is_dir()):
        raise UserError(f"there is no attendance register at {source}.")
    if source.is_file():
        _migrate_register(source, args.url)
    if gallery.is_dir():
        _migrate_gallery(gallery, settings.models_dir, args.url)
    return EXIT_OK


def _migrate_register(source: Path, url: str) -> None:
    from model.school.attendance import AttendanceBook, RegisterOffline
    from model.school.attendance_pg import PostgresBook

    target = PostgresBook(url)
    try:
        counts = target.copy_from(AttendanceBook(source))
    except RegisterOffline as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        target.close()
    for table, there, here in counts:
        print(f"{table}: {there} in {source.name}, {here} in {target.location}")
    print("the register was copied; set FACEATT_DATABASE_URL to use it")


def _migrate_gallery(folder: Path, models_dir: Path, url: str) -> None:
    from model.school.gallery import Gallery
    from model.school.gallery_sync import GalleryOffline, migrate_gallery

    try:
        counts = migrate_gallery(Gallery(folder), url, models_dir=models_dir)
    except (GalleryOffline, ValueError) as exc:
        raise UserError(str(exc)) from None
    print(f"gallery: {counts.people} people, {counts.crops} photos and {counts.models} "
          f"fine-tuned models of {folder} are in the shared gallery ({counts.copied_people} "
          f"people, {counts.copied_crops} photos and {counts.copied_models} models copied now)")


def _cmd_classes(args: argparse.Namespace) -> int:
    from model.school.attendance import open_register

    settings = get_settings()
    rows = []
    # Listing never creates the book: no book, no class.
    if settings.database_url or settings.attendance_db.exists():
        book = open_register(settings)
        rows = [(c, book.roster(c.id), len(book.sessions(c.id))) for c in book.classes()]
    if args.json:
        print(json.dumps({"classes": [
            {"name": c.name, "roster_size": len(roster), "roster": roster,
             "late_after_min": c.late_after_min, "sessions": sessions}
            for c, roster, sessions in rows]}, ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("no class yet: python -m model roster CSV --class NAME makes one")
    for c, roster, sessions in rows:
        print(f"{c.name}\t{len(roster)} on the roster\tlate after {c.late_after_min:g} min\t"
              f"{sessions} session(s)")
    return EXIT_OK


def _cmd_passcode_hash(args: argparse.Namespace) -> int:
    """Read the passcode (twice from a terminal, else the first line of stdin) and print
    the ``admin_passcode_hash`` line; the passcode itself is never printed."""
    from model.school.access import (
        DEFAULT_ITERATIONS,
        ENV_ADMIN_PASSCODE_HASH,
        SECRETS_HASH_KEY,
        hash_passcode,
    )

    if sys.stdin.isatty():
        import getpass

        code = getpass.getpass("Admin passcode: ")
        if code != getpass.getpass("The same again: "):
            raise UserError("the two passcodes differ; nothing was made.")
    else:
        code = sys.stdin.readline().rstrip("\r\n")
    if not code.strip():
        raise UserError("the passcode is empty; nothing was made.")
    line = hash_passcode(code, iterations=args.iterations or DEFAULT_ITERATIONS)
    print(f"# put this line in .streamlit/secrets.toml (or set {ENV_ADMIN_PASSCODE_HASH} to the "
          "quoted value), then restart the app", file=sys.stderr)
    print(f'{SECRETS_HASH_KEY} = "{line}"')
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
