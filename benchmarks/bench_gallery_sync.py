"""Kiosks sharing one gallery in PostgreSQL (issue 18): how soon does every kiosk see a change?

Run: ``python benchmarks/bench_gallery_sync.py`` (about a minute on 2 cores; ``--kiosks``,
``--people``, ``--changes``, ``--poll``, ``--scenario plain|dropped|restart``, ``--json``;
needs PostgreSQL's programs, ``make postgres``).

A throwaway PostgreSQL cluster (``benchmarks/postgres_cluster.py``, fsync on) gets a
gallery of ``--people`` people (two synthetic crops each: random pixels, no faces) with
``migrate_gallery``. Then ``--kiosks`` app processes (spawned Python processes standing for
classroom laptops, each with its own gallery folder) run the app's ``GallerySync`` thread
with the app's settings (``gallery_poll_s``), and the first full sync of every new kiosk is
timed. Then the changes: enroll a person, add a photo, rename, delete, in turn, each made
in the folders of one kiosk (the writer changes each time) as the app makes it, and left to
that kiosk's own thread to find and publish. A change counts as seen when every kiosk's
folders show the same people with the same photo counts as the writer's.

``plain``: nothing goes wrong. ``dropped``: just before each change every connection to the
database is cut (``pg_terminate_backend``), so the LISTEN connection misses the change's
notification; only the reconnect's full sync (or the poll) brings it. ``restart``: the
server is restarted (``pg_ctl restart -m fast``) just before each change.

Printed per scenario: seconds from the change on the writer's disk until every kiosk shows
it (median, 90th percentile, max). The issue asks for a median of 5 s or less, also after
a dropped connection.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.postgres_cluster import PostgresServer, find_bin_dir
from model.school.gallery import Gallery
from model.school.gallery_sync import GallerySync, migrate_gallery
from model.settings import Settings

#: Longest seconds a change may take to reach every kiosk before the run is called stuck.
STUCK_S = 60.0
#: Seconds between two looks at the kiosks' folders while waiting for a change.
LOOK_S = 0.02
SCENARIOS = ("plain", "dropped", "restart")


def _crops(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(n)]


def _kiosk(folder: str, url: str, poll_s: float) -> None:
    """One app process: its gallery folder kept equal to the shared gallery, until killed."""
    sync = GallerySync(Gallery(Path(folder) / "gallery"), url,
                       models_dir=Path(folder) / "models", poll_s=poll_s)
    sync.start()
    while True:  # what it says about itself, for the message of a run that got stuck
        time.sleep(0.5)
        (Path(folder) / "status.txt").write_text(f"{sync.status()}")


def _picture(folder: Path) -> dict[str, int]:
    """Who the kiosk's folders show, with their photo counts."""
    try:
        return {p.name: p.image_count for p in Gallery(folder / "gallery").people()}
    except (OSError, ValueError):  # a folder renamed while listed: look again
        return {"?": -1}


def _wait_equal(folders: list[Path], want: dict[str, int]) -> float:
    start = time.monotonic()
    while any(_picture(f) != want for f in folders):
        if time.monotonic() - start > STUCK_S:
            behind = [f"{f.name} ({len(_picture(f))} people, "
                      f"{sorted(set(want) ^ set(_picture(f)))[:4]}, "
                      f"{(f / 'status.txt').read_text() if (f / 'status.txt').exists() else ''})"
                      for f in folders if _picture(f) != want]
            raise RuntimeError(f"a change did not reach every kiosk within {STUCK_S} s: "
                               f"{', '.join(behind)} behind")
        time.sleep(LOOK_S)
    return time.monotonic() - start


def _change(gallery: Gallery, step: int, rng: np.random.Generator) -> None:
    """Enroll, add a photo, rename, delete: the People and Enroll pages' changes in turn."""
    kind, person = step % 4, f"Pupil {step // 4:04d}"
    if kind == 0:
        gallery.add_crops(person, _crops(2, rng), consent=True)
    elif kind == 1:
        gallery.add_crops(person, _crops(1, rng), consent=True)
    elif kind == 2:
        gallery.rename_person(person, f"{person} Renamed")
    else:
        gallery.finish_removal(gallery.remove_person(f"{person} Renamed"))


def _cut_connections(server: PostgresServer, url: str) -> None:
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()",
                      (url.rsplit("/", 1)[1],))


def run(kiosks: int, people: int, changes: int, poll_s: float,
        scenarios: tuple[str, ...]) -> dict[str, Any]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (make postgres)")
    work = Path(tempfile.mkdtemp(prefix="bench-gallery-sync-"))
    # A folder of its own: the server runs as the postgres user, who owns it.
    pg_folder = Path(tempfile.mkdtemp(prefix="bench-gallery-pg-"))
    server = PostgresServer(bin_dir, pg_folder, durable=True)
    server.start()
    rng = np.random.default_rng(0)
    folders = [work / f"kiosk{i}" for i in range(kiosks)]
    spawn = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    result: dict[str, Any] = {"kiosks": kiosks, "people": people, "poll_s": poll_s}
    try:
        url = server.create_database()
        seed = Gallery(folders[0] / "gallery")
        for i in range(people):
            seed.add_crops(f"Student {i:04d}", _crops(2, rng), consent=True)
        counts = migrate_gallery(seed, url)
        result["photos"] = counts.crops
        start = time.monotonic()
        for folder in folders:
            process = spawn.Process(target=_kiosk, args=(str(folder), url, poll_s), daemon=True)
            process.start()
            processes.append(process)
        _wait_equal(folders, _picture(folders[0]))
        # From the processes' start: each imports the library and connects first.
        result["first_sync_s"] = round(time.monotonic() - start, 2)
        step = 0
        for scenario in scenarios:
            seen = []
            for _ in range(changes):
                writer = folders[step % kiosks]
                if scenario == "dropped":
                    _cut_connections(server, url)
                elif scenario == "restart":
                    server.restart()
                _change(Gallery(writer / "gallery"), step, rng)
                seen.append(_wait_equal(folders, _picture(writer)))
                step += 1
            result[scenario] = {"changes": len(seen),
                                "median_s": round(statistics.median(seen), 2),
                                "p90_s": round(float(np.percentile(seen, 90)), 2),
                                "max_s": round(max(seen), 2)}
    finally:
        for process in processes:
            process.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_folder, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kiosks", type=int, default=4)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--changes", type=int, default=12,
                        help="changes per scenario (enroll, photo, rename, delete in turn)")
    parser.add_argument("--poll", type=float, default=Settings.gallery_poll_s,
                        help="each kiosk's gallery_poll_s (the app's default)")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.kiosks, args.people, args.changes, args.poll,
                 tuple(args.scenario or SCENARIOS))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['kiosks']} kiosks, {result['people']} people ({result['photos']} photos), "
          f"poll every {result['poll_s']} s")
    print(f"first full sync of every new kiosk: {result['first_sync_s']} s")
    for scenario in SCENARIOS:
        if scenario in result:
            r = result[scenario]
            print(f"{scenario:8} {r['changes']} changes seen by every kiosk in median "
                  f"{r['median_s']} s, 90% {r['p90_s']} s, max {r['max_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
