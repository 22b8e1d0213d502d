"""Many kiosks, one PostgreSQL register (issue 18): nothing lost, nothing doubled.

Run: ``python benchmarks/bench_school_register.py`` (both scenarios, about 20 s on 2
cores; ``--scenario plain|restart``, ``--json``; needs PostgreSQL's programs, ``make postgres``).

A throwaway PostgreSQL cluster (``benchmarks/postgres_cluster.py``, fsync on as a real
server keeps it) gets 40 classes of 50 students (2,000 people) and one session per class.
Then 4 app processes (spawned Python processes standing for 4 laptops, each with its own
data folder and so its own offline outbox) each run 2 kiosks (threads sharing the
process's register, as the app's pages do). Each kiosk opens its 5 sessions one after the
other and checks in that session's 50 students through the calls the live Check-in page
makes (``open_session_id`` before writing, ``check_in(..., score, how)``); it sees every
7th face twice in a row and the session's first 3 faces again at its end, and each repeat
must not add a row.

``plain``: nothing goes wrong. ``restart``: at 30% of the check-ins PostgreSQL is
restarted (``pg_ctl restart -m fast``: every connection dropped, open transactions rolled
back; a kiosk caught mid-transaction goes on into its outbox), and one app process is
killed with ``kill -9`` in the middle of its writes: the first whose outbox holds
check-ins, or the one with most students left just after the server is back. It is
started again on the same data folder (its outbox survives), as a teacher would restart
the kiosk, and the students it had not seen walk by again (the one in front of the camera
when it died, too). Every process delivers its outbox before it exits (a kiosk that lost
the server tries it again after the app's ``offline_retry_s``, 10 s, which the wall time
then includes), and every outbox is delivered once more at the end.

Then the check-ins are counted per class and person: exactly one each is expected.
Printed per scenario: ``check_in`` calls and repeats (of the processes that ran to the
end: a killed one's are not counted), check-ins delivered through an outbox, lost (no
row), doubled (rows beyond one), outbox left, kiosk errors, "all seen" (seconds from
"go" until every student had a kiosk's answer, some from its outbox), wall time (from "go"
until every process finished, its outbox delivered), check-ins per second (students /
wall time) and the median and 95th-percentile milliseconds of one ``check_in`` call. The
exit status is 1 when anything was lost or doubled, an outbox was left or a kiosk failed.

``--pace-s`` spaces each kiosk's faces (0: as fast as the register takes them, the
capacity figure); ``run_scenario`` is what ``tests/model/test_register_concurrency.py``
runs at a small size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.postgres_cluster import PostgresServer, find_bin_dir

#: The issue's size: 4 laptops x 2 kiosks, 40 classes of 50 (2,000 students).
APPS, KIOSKS_PER_APP, CLASSES, CLASS_SIZE = 4, 2, 40, 50
#: Every how-many-th face a kiosk sees twice in a row; faces seen again at a session's end.
REPEAT_EVERY, SEEN_AGAIN_AT_END = 7, 3
#: Share of all check-ins done when PostgreSQL is restarted (the ``restart`` scenario).
RESTART_AT = 0.3
#: Seconds after the restart returned until one app process is killed.
KILL_AFTER_S = 0.3
#: Longest seconds a scenario may take before it is called stuck.
STUCK_S = 600.0
_LINE = 8  # bytes of one progress line: "SSSSS X\n"


@dataclass(frozen=True)
class KioskPlan:
    """One kiosk: its name and, in order, its sessions with the students to check in."""

    name: str
    sessions: tuple[tuple[int, tuple[str, ...]], ...]

    @property
    def students(self) -> int:
        return sum(len(people) for _, people in self.sessions)


@dataclass(frozen=True)
class AppPlan:
    """One app process (a laptop): its data folder (and so its outbox) and kiosks."""

    url: str
    folder: str
    kiosks: tuple[KioskPlan, ...]
    offline_retry_s: float
    pace_s: float


@dataclass
class Figures:
    """One scenario's result (what ``main`` prints)."""

    scenario: str
    apps: int
    kiosks: int
    students: int
    sessions: int
    calls: int = 0
    repeats: int = 0
    lost: int = 0
    doubled: int = 0
    unexpected: int = 0
    via_outbox: int = 0
    outbox_left: int = 0
    errors: int = 0
    seen_s: float = 0.0
    wall_s: float = 0.0
    per_s: float = 0.0
    call_p50_ms: float = 0.0
    call_p95_ms: float = 0.0
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.unexpected or self.outbox_left
                    or self.errors)


# ----- one app process (a laptop with two kiosks) ------------------------------------------


def app_process(plan: AppPlan, go: Any = None) -> None:
    """Run ``plan``'s kiosks in threads on one register (``open_register``, as the app
    does), resuming after the last check-in each kiosk's progress file records; then
    deliver the outbox and write ``result.json`` into the data folder. ``go``: an event to
    wait for (all processes start together), ``None`` for a restarted process."""
    from model.school.attendance import open_register
    from model.settings import get_settings

    # The pool's reconnect warnings during the restart would drown the table.
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    folder = Path(plan.folder)
    settings = replace(get_settings(), data_dir=folder, database_url=plan.url,
                       offline_retry_s=plan.offline_retry_s)
    book = open_register(settings)
    (folder / f"ready-{os.getpid()}").touch()
    if go is not None:
        go.wait()
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda k=k, i=i: results.append(
        _run_kiosk(book, k, folder / f"progress-{i}.txt", plan.pace_s)), name=k.name)
        for i, k in enumerate(plan.kiosks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    give_up = time.monotonic() + 120
    while book.outbox_waiting() and time.monotonic() < give_up:
        # While offline the book tries the server only every offline_retry_s.
        book.deliver_outbox()
        time.sleep(0.1)
    left = book.outbox_waiting()
    book.close()
    merged = {"calls": sum(r["calls"] for r in results),
              "repeats": sum(r["repeats"] for r in results),
              "errors": [e for r in results for e in r["errors"]],
              "seconds": [s for r in results for s in r["seconds"]], "outbox_left": left}
    temporary = folder / "result.json.tmp"
    temporary.write_text(json.dumps(merged))
    temporary.replace(folder / "result.json")


def _done(progress: Path) -> int:
    """How many students this kiosk finished (complete lines of its progress file)."""
    return progress.stat().st_size // _LINE if progress.exists() else 0


def _run_kiosk(book: Any, kiosk: KioskPlan, progress: Path, pace_s: float) -> dict[str, Any]:
    """Check in ``kiosk``'s students as the live page would, from where it stopped."""
    from model.school.attendance import RegisterOffline

    errors: list[str] = []
    seconds: list[float] = []
    calls = repeats = 0

    def patiently(call: Callable[[], Any]) -> Any:
        """``call()`` until it answers: a kiosk waits for an unreachable register (no
        outbox helps opening a session), and an error is counted and tried again."""
        for _ in range(2000):
            try:
                return call()
            except RegisterOffline:
                time.sleep(0.1)
            except Exception as error:
                errors.append(f"{kiosk.name}: {type(error).__name__}: {error}"[:300])
                time.sleep(0.1)
        raise RuntimeError(f"{kiosk.name}: gave up")

    def check_in(session_id: int, person: str, index: int) -> Any:
        nonlocal calls
        # The live page writes only while its session is still the kiosk's open one.
        while patiently(lambda: book.open_session_id(kiosk.name)) != session_id:
            time.sleep(0.05)
        how = "head turn" if index % 3 == 0 else "live"
        start = time.perf_counter()
        made = patiently(lambda: book.check_in(session_id, person, score=0.6 + (index % 40) / 100,
                                               how=how))
        seconds.append(time.perf_counter() - start)
        calls += 1
        return made

    done = _done(progress)
    with progress.open("ab", buffering=0) as log:
        index = 0
        for session_id, people in kiosk.sessions:
            if index + len(people) <= done:
                index += len(people)
                continue
            # The teacher opens this kiosk's session; the page then reads who is in.
            patiently(partial(book.open_session, session_id, kiosk=kiosk.name))
            patiently(partial(book.present_people, session_id))
            for person in people:
                if index >= done:
                    made = check_in(session_id, person, index)
                    log.write(f"{index:05d} {'n' if made is None else 'y'}\n".encode())
                    if index % REPEAT_EVERY == 0:  # the face stayed in view a moment
                        check_in(session_id, person, index)
                        repeats += 1
                    if pace_s:
                        time.sleep(pace_s)
                index += 1
            for person in people[:SEEN_AGAIN_AT_END]:  # came back to the door
                check_in(session_id, person, 0)
                repeats += 1
    return {"calls": calls, "repeats": repeats, "errors": errors, "seconds": seconds}


# ----- the scenario ------------------------------------------------------------------------


def plan_register(url: str, workdir: Path, *, apps: int, kiosks: int, classes: int,
                  class_size: int, offline_retry_s: float,
                  pace_s: float) -> tuple[list[AppPlan], dict[tuple[int, str], int]]:
    """Create the classes, rosters and sessions (as teachers would have); split the
    sessions over the kiosks. Returns the app plans and, per (class id, student), 0."""
    from model.school.attendance_pg import PostgresBook

    total_kiosks = apps * kiosks
    if classes % total_kiosks:
        raise ValueError(f"{classes} classes do not split over {total_kiosks} kiosks")
    teacher = PostgresBook(url, outbox=None)
    try:
        expected: dict[tuple[int, str], int] = {}
        sessions: list[tuple[int, tuple[str, ...]]] = []
        for number in range(classes):
            school_class = teacher.create_class(f"Class {number + 1:02d}", head_turn=False)
            people = tuple(f"Student {number * class_size + i + 1:04d}" for i in range(class_size))
            teacher.add_to_roster(school_class.id, people)
            session = teacher.start_session(f"Register {number + 1:02d}", class_id=school_class.id)
            sessions.append((session.id, people))
            expected.update({(school_class.id, p): 0 for p in people})
    finally:
        teacher.close()
    plans = []
    for app in range(apps):
        folder = workdir / f"app-{app + 1}"
        folder.mkdir(parents=True)
        mine = []
        for k in range(kiosks):
            which = app * kiosks + k
            mine.append(KioskPlan(f"Laptop {app + 1} kiosk {k + 1}",
                                  tuple(sessions[which::total_kiosks])))
        plans.append(AppPlan(url, str(folder), tuple(mine), offline_retry_s, pace_s))
    return plans, expected


def _progress(plans: list[AppPlan]) -> list[int]:
    return [sum(_done(Path(p.folder) / f"progress-{i}.txt") for i in range(len(p.kiosks)))
            for p in plans]


def _outbox_waiting(folder: str) -> int:
    path = Path(folder) / "outbox.sqlite3"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


class _Chaos:
    """The restart scenario's two blows, dealt from the loop that watches the kiosks.

    At ``RESTART_AT`` of the check-ins PostgreSQL restarts (in a thread: the kiosks go
    on meanwhile). From then on, the first app process still checking in whose outbox
    holds check-ins is killed with ``kill -9`` (the one with most left when none has any
    ``KILL_AFTER_S`` after the server is back) and started again on its folder."""

    def __init__(self, server: PostgresServer, plans: list[AppPlan],
                 processes: list[Any], context: Any, events: list[str]) -> None:
        self.server, self.plans, self.processes, self.context = server, plans, processes, context
        self.events = events
        self.students = [sum(k.students for k in plan.kiosks) for plan in plans]
        self.restart: threading.Thread | None = None
        self.back_at: float | None = None
        self.killed = False

    def step(self, elapsed: float) -> None:
        done = _progress(self.plans)
        if self.restart is None:
            if sum(done) >= RESTART_AT * sum(self.students):
                self.events.append(f"PostgreSQL restarted (pg_ctl restart -m fast) at "
                                   f"{elapsed:.1f} s, {sum(done)}/{sum(self.students)} in")
                self.restart = threading.Thread(target=self._restart, args=(elapsed,))
                self.restart.start()
            return
        if self.killed:
            return
        working = [i for i, process in enumerate(self.processes)
                   if process.is_alive() and done[i] < self.students[i]]
        if not working:
            if self.back_at is not None:
                self.killed = True
                self.events.append("no app process was still checking in to kill")
            return
        waiting = {i: _outbox_waiting(self.plans[i].folder) for i in working}
        late = self.back_at is not None and elapsed >= self.back_at + KILL_AFTER_S
        if max(waiting.values()) or late:
            victim = max(working, key=lambda i: (waiting[i], self.students[i] - done[i]))
            self._kill(victim, elapsed, done[victim])

    def _restart(self, began: float) -> None:
        clock = time.perf_counter()
        self.server.restart("fast")
        took = time.perf_counter() - clock
        self.events[0] += f", back {took:.1f} s later"
        self.back_at = began + took

    def _kill(self, victim: int, elapsed: float, done: int) -> None:
        self.killed = True
        old = self.processes[victim]
        os.kill(old.pid or 0, signal.SIGKILL)
        old.join()
        self.events.append(
            f"app {victim + 1} killed (kill -9) at {elapsed:.1f} s with {done}/"
            f"{self.students[victim]} checked in and {_outbox_waiting(self.plans[victim].folder)}"
            f" in its outbox; started again on the same folder")
        again = self.context.Process(target=app_process, args=(self.plans[victim],),
                                     name=f"app-{victim + 1}-again")
        again.start()
        self.processes[victim] = again

    def finish(self) -> None:
        if self.restart is not None:
            self.restart.join()


def run_scenario(server: PostgresServer, workdir: Path, *, chaos: bool, apps: int = APPS,
                 kiosks: int = KIOSKS_PER_APP, classes: int = CLASSES,
                 class_size: int = CLASS_SIZE, offline_retry_s: float | None = None,
                 pace_s: float = 0.0, log: Callable[[str], None] = lambda _: None) -> Figures:
    """One scenario on a fresh database of ``server`` (``chaos``: restart PostgreSQL and
    kill -9 one app process mid-run). ``offline_retry_s``: the book's (default: the app's
    setting)."""
    from model.school.attendance_pg import PostgresBook
    from model.settings import Settings

    retry_s = Settings.offline_retry_s if offline_retry_s is None else offline_retry_s
    url = server.create_database()
    plans, expected = plan_register(url, workdir, apps=apps, kiosks=kiosks, classes=classes,
                                    class_size=class_size, offline_retry_s=retry_s,
                                    pace_s=pace_s)
    figures = Figures("restart + kill -9" if chaos else "plain", apps, apps * kiosks,
                      len(expected), classes)
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    processes = [context.Process(target=app_process, args=(plan, go), name=f"app-{i + 1}")
                 for i, plan in enumerate(plans)]
    chaos_maker = _Chaos(server, plans, processes, context, figures.events) if chaos else None
    try:
        for process in processes:
            process.start()
        while sum(len(list(Path(p.folder).glob("ready-*"))) for p in plans) < len(plans):
            if any(p.exitcode not in (None, 0) for p in processes):
                raise RuntimeError("an app process failed to start")
            time.sleep(0.05)
        go.set()
        start = time.perf_counter()
        log(f"{figures.scenario}: go")
        while any(p.is_alive() for p in processes):
            elapsed = time.perf_counter() - start
            if not figures.seen_s and sum(_progress(plans)) >= len(expected):
                figures.seen_s = elapsed
            if elapsed > STUCK_S:
                raise RuntimeError(f"stuck after {STUCK_S:.0f} s at {_progress(plans)}")
            if chaos_maker is not None:
                chaos_maker.step(elapsed)
            time.sleep(0.02)
        figures.wall_s = time.perf_counter() - start
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
        if chaos_maker is not None:
            chaos_maker.finish()
    failed = [p.name for p in processes if p.exitcode != 0]
    results = []
    for plan in plans:
        found = Path(plan.folder) / "result.json"
        if found.exists():
            results.append(json.loads(found.read_text()))
    errors = [e for r in results for e in r["errors"]] + [f"{n} exited badly" for n in failed]
    seconds = sorted(s for r in results for s in r["seconds"])
    figures.calls = sum(r["calls"] for r in results)
    figures.repeats = sum(r["repeats"] for r in results)
    figures.errors = len(errors)
    if errors:
        figures.events.append(f"first errors: {'; '.join(dict.fromkeys(errors[:5]))}")
    if seconds:
        figures.call_p50_ms = 1e3 * statistics.median(seconds)
        figures.call_p95_ms = 1e3 * seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))]
    figures.per_s = figures.students / figures.wall_s
    # Every outbox once more, as a kiosk's page would at its next check-in.
    for plan in plans:
        book = PostgresBook(url, outbox=Path(plan.folder) / "outbox.sqlite3",
                            offline_retry_s=0.0)
        try:
            book.deliver_outbox()
            figures.outbox_left += book.outbox_waiting()
        finally:
            book.close()
    _count(url, expected, figures)
    return figures


def _count(url: str, expected: dict[tuple[int, str], int], figures: Figures) -> None:
    """Rows per (class, person) in the register against the plan: lost, doubled, unexpected."""
    import psycopg

    with psycopg.connect(url) as db:
        rows = db.execute("SELECT s.class_id, c.person, COUNT(*) FROM checkins c"
                          " JOIN sessions s ON s.id = c.session_id GROUP BY 1, 2").fetchall()
        [(figures.via_outbox, figures.sessions)] = db.execute(
            "SELECT (SELECT COUNT(*) FROM checkins WHERE client_id IS NOT NULL),"
            " (SELECT COUNT(*) FROM sessions)").fetchall()
    counts = Counter({(int(c), str(p)): int(n) for c, p, n in rows})
    figures.lost = sum(1 for key in expected if counts[key] == 0)
    figures.doubled = sum(n - 1 for key, n in counts.items() if key in expected and n > 1)
    figures.unexpected = sum(n for key, n in counts.items() if key not in expected)


# ----- printing ----------------------------------------------------------------------------


_COLUMNS = (("scenario", "scenario", "{}"), ("kiosks", "kiosks", "{}"),
            ("students", "students", "{}"), ("sessions", "sessions", "{}"),
            ("calls", "check_in calls", "{}"), ("repeats", "repeats", "{}"),
            ("lost", "lost", "{}"), ("doubled", "doubled", "{}"),
            ("via_outbox", "via outbox", "{}"), ("outbox_left", "outbox left", "{}"),
            ("errors", "errors", "{}"), ("seen_s", "all seen s", "{:.1f}"),
            ("wall_s", "wall s", "{:.1f}"),
            ("per_s", "check-ins/s", "{:.0f}"), ("call_p50_ms", "call p50 ms", "{:.1f}"),
            ("call_p95_ms", "call p95 ms", "{:.1f}"))


def render(rows: list[Figures]) -> str:
    """The figures as a small text table, then each scenario's events."""
    cells = [[title for _, title, _ in _COLUMNS]]
    cells += [[fmt.format(getattr(row, name)) for name, _, fmt in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths,
                                                                                         strict=True)))
             for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for row in rows:
        lines += [f"{row.scenario}: {event}" for event in row.events]
        lines.append(f"{row.scenario}: {'OK' if row.ok else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("plain", "restart", "both"), default="both")
    parser.add_argument("--apps", type=int, default=APPS, help="app processes (laptops)")
    parser.add_argument("--kiosks", type=int, default=KIOSKS_PER_APP, help="kiosks per app")
    parser.add_argument("--classes", type=int, default=CLASSES,
                        help="classes, one session each (a multiple of apps x kiosks)")
    parser.add_argument("--class-size", type=int, default=CLASS_SIZE)
    parser.add_argument("--pace-s", type=float, default=0.0,
                        help="seconds between a kiosk's faces (0: as fast as it can)")
    parser.add_argument("--offline-retry-s", type=float, default=None,
                        help="the book's offline_retry_s (default: the app's setting)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    bin_dir = find_bin_dir()
    if bin_dir is None:
        print("PostgreSQL's programs are not installed (make postgres)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bench-register-"))
    # A folder of its own: as root it is handed to the postgres user, who must reach it.
    cluster = Path(tempfile.mkdtemp(prefix="bench-register-pg-"))
    rows: list[Figures] = []
    try:
        server = PostgresServer(bin_dir, cluster, durable=True)
        server.start()
        try:
            chosen = {"plain": [False], "restart": [True], "both": [False, True]}[args.scenario]
            for chaos in chosen:
                work = folder / ("restart" if chaos else "plain")
                rows.append(run_scenario(
                    server, work, chaos=chaos, apps=args.apps, kiosks=args.kiosks,
                    classes=args.classes, class_size=args.class_size, pace_s=args.pace_s,
                    offline_retry_s=args.offline_retry_s,
                    log=lambda line: print(line, file=sys.stderr, flush=True)))
        finally:
            with contextlib.suppress(RuntimeError):
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(cluster, ignore_errors=True)
    if args.json:
        print(json.dumps([asdict(r) | {"ok": r.ok} for r in rows], indent=2))
    else:
        print(render(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
