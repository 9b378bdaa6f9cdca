"""Fuzz campaign for the chunk decoder (issue 17): run it before a format or decoder change.

Usage::

    python benchmarks/fuzz.py --cases 20000 --seed 0 --jobs 2 --boundscheck [--json out.json]

Mutated chunks (:mod:`bigcomp.testing.fuzz`: the seeds of every format version and kind, plus
the checked-in fixtures of older writers) are decoded in worker processes. A worker that dies on
a case records a *crash*, one that does not answer within ``--case-timeout`` seconds is killed
and records a *hang*; a fresh worker (which compiles the decoders again, 20-90 s) takes the
remaining cases. Each worker may map ``--mem-limit`` MiB beyond what it holds after compiling,
so a decode asking for more gets a ``MemoryError`` (an *other exception*), not the machine.

``--boundscheck`` runs the workers with ``NUMBA_BOUNDSCHECK=1`` (an out-of-bounds access in a
kernel raises ``IndexError`` instead of reading or writing memory) and, unless ``--numba-opt`` says
otherwise, ``NUMBA_OPT=0`` (about 3x faster compilation, same results). Kernels compiled so are
cached on disk apart from bigcomp's usual kernel cache (``$TMPDIR/bigcomp-fuzz-kernels-*``).

Prints the markdown table of :meth:`bigcomp.testing.fuzz.FuzzReport.summary`: per format version
of the seed chunk, the inputs tried and their outcomes, then every failure class with a case to
reproduce it::

    from bigcomp import decode_chunk
    from bigcomp.testing.fuzz import fixture_seeds, make_case, seed_chunks
    seeds = [*seed_chunks(), *fixture_seeds("tests/fixture")]
    decode_chunk(make_case(seeds, seed=0, index=123).chunk)
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bigcomp.testing.fuzz import (
    CaseResult,
    FuzzReport,
    bomb_chunks,
    fixture_seeds,
    limit_memory,
    make_case,
    parse_chunk,
    run_case,
    seed_chunks,
    warm_up,
)

TAG = "@@fuzz "  # protocol lines on a worker's stdout start with this


# ------------------------------------------------------------------------------- the worker
def _say(obj) -> None:
    sys.stdout.write(TAG + json.dumps(obj) + "\n")
    sys.stdout.flush()


def _seeds(folder: Path) -> list:
    """The seeds of this campaign: written by the first worker, read by the others."""
    path = folder / "seeds.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    seeds = [*seed_chunks(), *pickle.loads((folder / "extra.pkl").read_bytes())]
    tmp = path.with_suffix(f".{os.getpid()}")
    tmp.write_bytes(pickle.dumps(seeds))
    os.replace(tmp, path)
    return seeds


def worker(folder: Path, seed: int, hang_s: float, mem_limit: int) -> None:
    """Decode the cases whose indices arrive on stdin; one JSON line per result."""
    t0 = time.perf_counter()
    seeds = _seeds(folder)
    _say({"seeds": len(seeds)})
    bombs = bomb_chunks(seeds)
    warm_up(seeds)
    limit_memory(mem_limit)
    tracemalloc.start()
    _say({"ready": round(time.perf_counter() - t0, 1)})
    for line in sys.stdin:
        index = int(line)
        case = bombs[-1 - index] if index < 0 else make_case(seeds, seed, index)
        _say(asdict(run_case(case, hang_s=hang_s)))


# ------------------------------------------------------------------------------- the parent
class Worker:
    def __init__(self, cmd: list[str], env: dict, log: Path, start_timeout: float):
        self.log = log.open("w+b")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, env=env)
        self.buf = b""
        self.case: int | None = None
        self.ready = False
        self.deadline = time.monotonic() + start_timeout

    def send(self, index: int, timeout: float) -> None:
        self.proc.stdin.write(f"{index}\n".encode())
        self.proc.stdin.flush()
        self.case, self.deadline = index, time.monotonic() + timeout

    def read(self) -> list[dict] | None:
        """Messages now readable; ``None`` at the end of its output (the worker died)."""
        data = os.read(self.proc.stdout.fileno(), 1 << 16)
        if not data:
            return None
        *lines, self.buf = (self.buf + data).split(b"\n")
        return [json.loads(x[len(TAG):]) for x in lines if x.startswith(TAG.encode())]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.log.flush()
        return rc

    def stderr_tail(self, n: int = 1500) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-n:]


def campaign(n_cases: int, seed: int = 0, *, jobs: int = 1, boundscheck: bool = False,
             numba_opt: int | None = None, extra_seeds=(), hang_s: float = 5.0,
             case_timeout: float = 120.0, start_timeout: float = 900.0,
             mem_limit: int = 2 << 30, max_chunk_bytes: int | None = None, bombs: bool = True,
             progress=None) -> FuzzReport:
    """The cases of :func:`bigcomp.testing.fuzz.fuzz`, decoded in ``jobs`` worker processes.

    ``progress(report, cases_left)`` is called about every 30 s.
    """
    t0 = time.perf_counter()
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1" if boundscheck else "0", PYTHONFAULTHANDLER="1")
    if numba_opt is not None:
        env["NUMBA_OPT"] = str(numba_opt)
    if boundscheck or numba_opt is not None:
        # kernels compiled so are not for other processes, nor are theirs for these: the
        # on-disk kernel cache does not tell compilation flags apart
        name = f"bigcomp-fuzz-kernels-bc{boundscheck:d}-opt{numba_opt}"
        kernels = Path(tempfile.gettempdir()) / name
        env["BIGCOMP_CACHE_DIR"] = env["NUMBA_CACHE_DIR"] = str(kernels)
    if max_chunk_bytes is not None:
        env["BIGCOMP_MAX_CHUNK_BYTES"] = str(int(max_chunk_bytes))
    report = FuzzReport(seed, [], boundscheck=boundscheck)
    with tempfile.TemporaryDirectory(prefix="bigcomp-fuzz-") as tmp:
        folder = Path(tmp)
        (folder / "extra.pkl").write_bytes(pickle.dumps(list(extra_seeds)))
        cmd = [sys.executable, __file__, "--worker", tmp, "--seed", str(seed), "--hang",
               str(hang_s), "--mem-limit", str(mem_limit >> 20)]
        seeds: list = []
        cases: list = []  # the bombs
        pending = deque(range(n_cases))
        spawned = 0

        def spawn() -> Worker:
            nonlocal spawned
            spawned += 1
            return Worker(cmd, env, folder / f"worker{spawned}.log", start_timeout)

        def record(w: Worker, outcome: str, error: str) -> None:
            case = cases[-1 - w.case] if w.case < 0 else make_case(seeds, seed, w.case)
            try:
                claimed = parse_chunk(case.chunk).claimed_bytes()
            except Exception:  # noqa: BLE001 - a header too damaged to parse
                claimed = 0
            result = CaseResult(case.index, case.seed, case.version, list(case.mutations),
                                case.crc, outcome, error, chunk_bytes=len(case.chunk),
                                claimed_bytes=claimed)
            (report.bombs if w.case < 0 else report.results).append(result)

        workers = [spawn()]  # the others start when it has written the seeds
        last = time.monotonic()
        while workers:
            for w in workers:
                if w.ready and w.case is None and pending:
                    w.send(pending.popleft(), case_timeout)
            busy = [w for w in workers if w.case is not None or not w.ready]
            if not busy:
                break
            wait = min(30.0, max(0.0, min(w.deadline for w in busy) - time.monotonic()))
            readable, _, _ = select.select([w.proc.stdout for w in busy], [], [], wait)
            for w in busy:
                if w.proc.stdout in readable:
                    messages = w.read()
                    if messages is None:  # the worker died
                        rc = w.stop()
                        if not w.ready:
                            raise RuntimeError(f"fuzz worker failed to start (exit {rc}):\n"
                                               f"{w.stderr_tail()}")
                        how = f"signal {-rc}" if rc < 0 else f"exit code {rc}"
                        record(w, "crash", f"worker died ({how}): {w.stderr_tail(600)}")
                    else:
                        for msg in messages:
                            if "seeds" in msg:
                                workers += [spawn() for _ in range(jobs - len(workers))]
                            elif "ready" in msg:
                                w.ready = True
                                if not seeds:  # the first worker up wrote them
                                    seeds = pickle.loads((folder / "seeds.pkl").read_bytes())
                                    cases = bomb_chunks(seeds) if bombs else []
                                    pending.extendleft(range(-len(cases), 0))
                            else:
                                result = CaseResult(**msg)
                                (report.bombs if result.index < 0 else report.results).append(
                                    result)
                                w.case = None
                        continue
                elif time.monotonic() >= w.deadline:
                    w.stop()
                    if not w.ready:
                        raise RuntimeError(f"fuzz worker not ready after {start_timeout} s:\n"
                                           f"{w.stderr_tail()}")
                    record(w, "hang", f"no answer within {case_timeout} s (worker killed)")
                else:
                    continue
                workers.remove(w)  # gone: a fresh one takes the remaining cases
                w.log.close()
                if pending:
                    workers.append(spawn())
            if progress is not None and time.monotonic() - last > 30:
                last = time.monotonic()
                progress(report, len(pending))
        for w in workers:
            w.stop()
            w.log.close()
    report.results.sort(key=lambda r: r.index)
    report.bombs.sort(key=lambda r: -r.index)
    report.seconds = time.perf_counter() - t0
    return report


def _progress(t0: float):
    def show(report: FuzzReport, left: int) -> None:
        c = report.counts()
        print(f"[{time.perf_counter() - t0:6.0f} s] {c['inputs']} done, {left} left: "
              f"{c['other']} other, {c['crash']} crashes, {c['hang']} hangs, "
              f"{c['blowup']} blow-ups, {c['no_crc_accepted']} no-CRC accepted",
              file=sys.stderr, flush=True)
    return show


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=20000, help="inputs to try (default 20000)")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--boundscheck", action="store_true",
                   help="NUMBA_BOUNDSCHECK=1 in the workers (and NUMBA_OPT=0 unless --numba-opt)")
    p.add_argument("--numba-opt", type=int, default=None, help="NUMBA_OPT of the workers")
    p.add_argument("--hang", type=float, default=None,
                   help="seconds a decode may take, compilation not counted (default 5; 30 with "
                        "--boundscheck: unoptimised kernels decode a 1 GiB chunk in ~20 s)")
    p.add_argument("--case-timeout", type=float, default=120.0,
                   help="seconds before a silent worker is killed (default 120)")
    p.add_argument("--mem-limit", type=int, default=2048,
                   help="MiB a worker may map beyond its compiled state (default 2048)")
    p.add_argument("--max-chunk-bytes", type=int, default=None,
                   help="BIGCOMP_MAX_CHUNK_BYTES of the workers (default: bigcomp's)")
    p.add_argument("--no-fixtures", action="store_true",
                   help="leave out the checked-in chunks of tests/fixture as seeds")
    p.add_argument("--examples", type=int, default=2, help="cases shown per failure class")
    p.add_argument("--json", type=Path, default=None, help="write the full report here")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        worker(args.worker, args.seed, args.hang or 5.0, args.mem_limit << 20)
        return 0
    extra = [] if args.no_fixtures else fixture_seeds(ROOT / "tests" / "fixture")
    opt = args.numba_opt if args.numba_opt is not None or not args.boundscheck else 0
    hang = args.hang if args.hang is not None else 30.0 if args.boundscheck else 5.0
    t0 = time.perf_counter()
    report = campaign(args.cases, args.seed, jobs=args.jobs, boundscheck=args.boundscheck,
                      numba_opt=opt, extra_seeds=extra, hang_s=hang,
                      case_timeout=args.case_timeout, mem_limit=args.mem_limit << 20,
                      max_chunk_bytes=args.max_chunk_bytes, progress=_progress(t0))
    if args.json is not None:
        args.json.write_text(report.to_json())
    print(report.summary(examples=args.examples))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
