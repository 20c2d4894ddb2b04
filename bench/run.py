"""The benchmark command: every reference workload against pybuildctl, printed next to the anchor.

    .venv/bin/python bench/run.py [--only W2] [--reps 3] [--json out.json] [--daemon | --addr unix:///...]
    .venv/bin/python bench/run.py --only W2 --reps 1 --profile W2   # where does the time go?

It starts its own registry on 127.0.0.1 seeded with the fixture base image, generates contexts
(never committed), and times each client invocation. Figures only; nothing here asserts.
`--daemon` builds through a pybuildkitd of its own (one per workload state, started fresh for a
cold run; the start is not timed but reported, with the daemon's RSS idle and after the work).
`--profile NAME` runs that workload once more after its timed runs under py-spy (all
processes, native frames off) and writes the collapsed stacks (speedscope and flamegraph.pl
read them) plus a summary of the heaviest functions; with `--daemon` the daemon is profiled
too, into profile-NAME-daemon.txt.
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = REPO / "bench" / "workloads"
PACKAGES = ("appliance", "binfmt", "frontend", "solver", "systemd", "worker")
sys.path.insert(0, str(REPO))

from tests.fixtures.daemon import Daemon, start_daemon  # noqa: E402  (needs the path above)

ANCHOR = {  # BuildKit v0.32.2 medians on the reference 2-core machine (../shared/bench/README.md)
    "W1 cold": 3.57, "W2 cold": 2.11, "W3 cold": 5.2, "W4a no-op W1": 0.045, "W4b no-op W3": 0.50,
    "W5 one file changed": 2.34, "W6 export gzip": 8.2, "W6 export zstd": 1.7, "W6 export estargz": 9.8,
    "W6 push gzip": 8.3, "W7 cache first": 0.94, "W7 cache reuse": 0.36, "W8 three platforms": 6.5,
}
TARGET = {
    "W1 cold": 3.6, "W2 cold": 1.2, "W3 cold": 4.4, "W4a no-op W1": 0.5, "W4b no-op W3": 0.5,
    "W5 one file changed": 1.5, "W6 export gzip": 1.5, "W6 export zstd": 1.0, "W6 export estargz": 2.5,
    "W6 push gzip": 2.0, "W7 cache first": 0.94, "W7 cache reuse": 0.36, "W8 three platforms": 6.5,
}

DAEMON_NOOP_TARGET = 0.15  # W4a through pybuildkitd; TARGET's 0.5 is the daemonless one


@dataclass
class Figure:
    name: str
    times: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def minimum(self) -> float:
        return min(self.times) if self.times else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace, registry_host: str, work: Path) -> None:
        self.args = args
        self.registry_host = registry_host
        self.work = work
        self.base = f"{registry_host}/library/busybox:latest"
        self.config = work / "pybuildkitd.toml"
        self.config.write_text(
            f'[registry."docker.io"]\nmirrors = ["{registry_host}"]\n'
            f'[registry."{registry_host}"]\nhttp = true\n')
        self.figures: dict[str, Figure] = {}
        self.daemons: dict[Path, Daemon] = {}
        self.roots: dict[str, Path] = {}  # workload state name -> its current directory
        self.roots_made: list[Path] = []
        self.daemon_ready: list[float] = []
        self.daemon_rss_idle: list[float] = []
        self.daemon_rss_peak = 0.0
        self.profile_out: Path | None = None  # set while the profiled run of --profile runs
        self.daemon_profile_out: Path | None = None  # with --daemon: where that run's daemon profile goes
        self.daemon_spy: subprocess.Popen[bytes] | None = None
        self.spied_pid = 0

    def state(self, name: str, fresh: bool) -> Path:
        """The state directory of a workload; a fresh one is new, never a deleted and recreated
        one: deleting a gigabyte of state can cost this disk (ext4 with online discard) seconds
        of slow I/O afterwards, inside the next timed run. They all go with the work directory
        at the end."""
        root = self.roots.get(name)
        if root is not None and fresh and root in self.daemons:
            self.stop_daemon(root)
        if root is None or fresh:
            root = self.roots[name] = self.work / "state" / f"{name}.{len(self.roots_made)}"
            self.roots_made.append(root)
        return root

    def build(self, workload: str, *, root: Path, context: Path | None = None, opts: Sequence[str] = (),
              outputs: Sequence[str] = ()) -> tuple[float, float]:
        """One client invocation; returns (wall seconds, peak RSS MB of the builder process)."""
        dockerfile_dir = WORKLOADS / workload
        cmd = [sys.executable, "-m", "pybuildkit.appliance.cli.main"]
        if self.args.daemon:
            cmd += ["--addr", self.daemon_for(root).address]
        elif self.args.addr:
            cmd += ["--addr", self.args.addr]
        else:
            cmd += ["--daemonless", "--root", str(root), "--config", str(self.config)]
        cmd += ["build", "--progress", "quiet", "--frontend", "dockerfile.v0",
                "--local", f"context={context or dockerfile_dir}", "--local", f"dockerfile={dockerfile_dir}",
                "--opt", f"build-arg:BASE={self.base}"]
        for opt in opts:
            cmd += ["--opt", opt]
        for out in outputs:
            cmd += ["--output", out]
        if self.profile_out is not None:
            cmd = [*py_spy(), "record", "--subprocesses", "--rate", "250", "--format", "raw",
                   "--output", str(self.profile_out), "--", *cmd]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = proc.communicate()
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{workload} failed:\n{err.decode(errors='replace')[-3000:]}")
        import resource
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return elapsed, rss

    def daemon_for(self, root: Path) -> Daemon:
        daemon = self.daemons.get(root)
        if daemon is None:
            rundir = Path(tempfile.mkdtemp(prefix="run-", dir=self.work))
            start = time.perf_counter()
            daemon = self.daemons[root] = start_daemon(root, self.config, rundir)
            self.daemon_ready.append(time.perf_counter() - start)
            self.daemon_rss_idle.append(_rss_mb(daemon.proc.pid, "VmRSS"))
            if self.daemon_profile_out is not None and self.daemon_spy is None:
                self.spy_on(daemon)
        return daemon

    def stop_daemon(self, root: Path) -> None:
        daemon = self.daemons.pop(root)
        if self.daemon_spy is not None and self.spied_pid == daemon.proc.pid:
            # a cold profiled run replaces the warm daemon: the spy follows to the new one
            self.daemon_spy.send_signal(signal.SIGINT)
            self.daemon_spy.wait(timeout=60)
            self.daemon_spy = None
        self.daemon_rss_peak = max(self.daemon_rss_peak, _rss_mb(daemon.proc.pid, "VmHWM"))
        daemon.stop()

    def wanted(self, name: str) -> bool:
        return not self.args.only or any(name.startswith(o) for o in self.args.only)

    def record(self, name: str, fn: Callable[[], tuple[float, float]],
               warm: Callable[[], object] | None = None) -> None:
        """Time `fn` --reps times; `warm` first builds the state a warm workload starts from
        when the cold workload before it was not run (--only W4b)."""
        if not self.wanted(name):
            return
        if warm is not None:
            warm()
        figure = self.figures.setdefault(name, Figure(name))
        for _ in range(self.args.reps):
            seconds, rss = fn()
            figure.times.append(seconds)
            figure.peak_rss_mb = max(figure.peak_rss_mb, rss)
        print(f"  {name}: min {figure.minimum:.2f}s median {figure.median:.2f}s", file=sys.stderr)
        if self.args.profile and name.startswith(self.args.profile):
            slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
            out = self.args.profile_dir / f"profile-{slug}.txt"
            self.profile_out = out
            self.daemon_profile_out = self.args.profile_dir / f"profile-{slug}-daemon.txt"
            if self.args.daemon and self.daemons:
                self.spy_on(list(self.daemons.values())[-1])  # a warm workload's daemon
            try:
                fn()
            finally:
                self.profile_out = self.daemon_profile_out = None
                spied, self.daemon_spy = self.daemon_spy, None
                if spied is not None:
                    spied.send_signal(signal.SIGINT)
                    spied.wait(timeout=60)
            print(summarize_profile(out), file=sys.stderr)
            print(f"  profile of {name}: {out} (collapsed stacks)", file=sys.stderr)
            if spied is not None:
                daemon_out = self.args.profile_dir / f"profile-{slug}-daemon.txt"
                print("  the daemon:\n" + summarize_profile(daemon_out), file=sys.stderr)
                print(f"  profile of {name} in the daemon: {daemon_out} (collapsed stacks)", file=sys.stderr)

    def spy_on(self, daemon: Daemon) -> None:
        """py-spy attached to the daemon the profiled run talks to (a cold run's starts inside it)."""
        assert self.daemon_profile_out is not None
        self.spied_pid = daemon.proc.pid
        self.daemon_spy = subprocess.Popen(
            [*py_spy(), "record", "--rate", "250", "--format", "raw",
             "--output", str(self.daemon_profile_out), "--pid", str(daemon.proc.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let py-spy attach before the build starts (following subprocesses lost the samples)

    def run_all(self) -> None:
        w3_ctx = self.work / "w3-context"
        if not w3_ctx.exists() and (not self.args.only or any(o.startswith(("W3", "W4b", "W5")) for o in self.args.only)):
            subprocess.run(["bash", str(WORKLOADS / "w3-big-context" / "gen.sh"), str(w3_ctx)], check=True,
                           stdout=subprocess.DEVNULL)
            shutil.copy(WORKLOADS / "w3-big-context" / "Dockerfile", w3_ctx / "Dockerfile")

        self.record("W1 cold", lambda: self.build("w1-multistage-parallel", root=self.state("w1", True)))
        self.record("W4a no-op W1", lambda: self.build("w1-multistage-parallel", root=self.state("w1", False)),
                    warm=lambda: self.build("w1-multistage-parallel", root=self.state("w1", False)))
        self.record("W2 cold", lambda: self.build("w2-many-steps", root=self.state("w2", True)))
        if "W2 cold" in self.figures:
            self.figures["W2 cold"].extra["ms per step"] = self.figures["W2 cold"].median / 40 * 1000
        if w3_ctx.exists():
            self.record("W3 cold", lambda: self.build("w3-big-context", root=self.state("w3", True), context=w3_ctx))
            self.record("W4b no-op W3", lambda: self.build("w3-big-context", root=self.state("w3", False), context=w3_ctx),
                        warm=lambda: self.build("w3-big-context", root=self.state("w3", False), context=w3_ctx))

            def one_file_changed() -> tuple[float, float]:
                target = w3_ctx / "d000" / "changed.txt"
                target.write_text(f"changed {time.time_ns()}\n")
                return self.build("w3-big-context", root=self.state("w3", False), context=w3_ctx)

            self.record("W5 one file changed", one_file_changed,
                        warm=lambda: self.build("w3-big-context", root=self.state("w3", False), context=w3_ctx))
            if "W3 cold" in self.figures:
                self.figures["W3 cold"].extra["context MB/s"] = 206 / self.figures["W3 cold"].median
        w6_root = self.state("w6", True)
        if not self.args.only or any(o.startswith("W6") for o in self.args.only):
            self.build("w6-export", root=w6_root)  # warm the cache: export timings are on a cached build
        for comp in ("gzip", "zstd", "estargz"):
            out = self.work / f"w6-{comp}.tar"
            output = f"type=oci,dest={out},compression={comp},oci-mediatypes=true,force-compression=true"
            self.record(f"W6 export {comp}", functools.partial(self.build, "w6-export", root=w6_root, outputs=[output]))
            if f"W6 export {comp}" in self.figures:
                self.figures[f"W6 export {comp}"].extra["MB/s"] = 308 / self.figures[f"W6 export {comp}"].median
        self.record("W6 push gzip", lambda: self.build(
            "w6-export", root=w6_root,
            outputs=[f"type=image,name={self.registry_host}/bench/w6:{time.time_ns()},push=true"]))
        w7_root = self.state("w7", True)
        self.record("W7 cache first", lambda: self.build("w7-cache-mount", root=self.state("w7", True)))
        self.record("W7 cache reuse", lambda: self.build("w7-cache-mount", root=w7_root,
                                                         opts=[f"build-arg:V={time.time_ns()}"]),
                    warm=lambda: self.build("w7-cache-mount", root=w7_root))
        self.record("W8 three platforms", lambda: self.build(
            "w8-multi-arch", root=self.state("w8", True), opts=["platform=linux/amd64,linux/arm64,linux/s390x"]))

    def target(self, name: str) -> float | None:
        """The median a workload must reach; a no-op W1 through the daemon has a tighter one."""
        if name == "W4a no-op W1" and (self.args.addr or self.args.daemon):
            return DAEMON_NOOP_TARGET
        return TARGET.get(name)

    def table(self) -> str:
        header = (f"{'workload':<24} {'min s':>8} {'median s':>9} {'BuildKit':>9} {'target':>7} {'ratio':>6} "
                  f"{'meets target':>12}  extra")
        lines = [header]
        for name, fig in self.figures.items():
            anchor = ANCHOR.get(name)
            ratio = fig.median / anchor if anchor else float("nan")
            target = self.target(name)
            meets = "-" if target is None else ("yes" if fig.median <= target else "NO")
            extra = ", ".join(f"{k} {v:.1f}" for k, v in fig.extra.items())
            lines.append(f"{name:<24} {fig.minimum:>8.2f} {fig.median:>9.2f} {anchor or 0:>9.2f} "
                         f"{target or 0:>7.2f} {ratio:>6.2f} {meets:>12}  {extra}")
        peak = max((f.peak_rss_mb for f in self.figures.values()), default=0)
        du = subprocess.run(["du", "-smc", *map(str, self.roots.values())], capture_output=True, text=True,
                            check=False).stdout.splitlines() if self.roots else []
        size = du[-1].split()[0] if du else "?"  # the total of the workloads' current states
        lines.append(f"peak RSS of builder processes: {peak:.0f} MB; state directories: {size} MB")
        for root in list(self.daemons):
            self.stop_daemon(root)
        if self.daemon_ready:
            lines.append(f"daemon ready after start: median {statistics.median(self.daemon_ready):.2f} s "
                         f"(target <= 0.5 s, BuildKit 0.14-0.18 s) over {len(self.daemon_ready)} starts; "
                         f"RSS idle {statistics.median(self.daemon_rss_idle):.0f} MB (target <= 80), "
                         f"peak after the workloads {self.daemon_rss_peak:.0f} MB (target <= 250)")
        return "\n".join(lines)


def _rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def py_spy() -> list[str]:
    """py-spy from the venv (scripts/install-deps.sh installs it) or from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/python -m pip install py-spy")
    return [found]


def summarize_profile(path: Path, top: int = 25) -> str:
    """The heaviest frames of a py-spy raw profile: self time (where the CPU is) and total time
    of our own functions (which step of ours it is spent under), as shares of all samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        if frames:
            own[_frame_name(frames[-1])] += count
        for name in {_frame_name(f) for f in frames if _OWN_FRAME.search(f)}:
            total[name] += count
    if not samples:
        return "  (no samples)"
    lines = [f"  {samples} samples; self time:"]
    lines += [f"    {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("  total time under our functions:")
    lines += [f"    {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


_OWN_FRAME = re.compile(r"\((appliance|binfmt|frontend|solver|worker)/")  # py-spy names files by package path


def _frame_name(frame: str) -> str:
    """'func (worker/ops/exec_op.py:12)' -> 'func (worker/ops/exec_op.py)': lines vary, functions do not."""
    return re.sub(r":\d+\)$", ")", frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="workload name prefix, e.g. W2 (repeatable)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--addr", default="", help="a pybuildkitd address instead of --daemonless")
    parser.add_argument("--daemon", action="store_true",
                        help="build through pybuildkitd daemons of its own (one per workload state) instead of --daemonless")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--profile", metavar="NAME", default="",
                        help="profile one more run of the workload whose name starts with NAME (py-spy)")
    parser.add_argument("--profile-dir", type=Path, default=Path.cwd(), help="where --profile writes (default: .)")
    args = parser.parse_args()
    if args.profile:
        py_spy()  # fail before the benchmark, not after it
        if not args.only:
            args.only = [args.profile]
    from tests.fixtures.base_image import push_base_images
    from tests.fixtures.registry import start_registry

    if args.daemon and args.addr:
        parser.error("--daemon and --addr exclude each other")

    # bytecode as the .deb's py3compile leaves it: under PYTHONDONTWRITEBYTECODE=1 a checkout
    # would compile every changed module again at each client and daemon start
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in PACKAGES)], check=False,
                   stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="pybuildkit-bench-", dir="/var/tmp"))
    registry = start_registry(work / "registry")
    try:
        push_base_images(registry)
        bench = Bench(args, registry.host, work)
        bench.run_all()
        print(bench.table())
        if args.json:
            args.json.write_text(json.dumps({n: {**asdict(f), "min": f.minimum, "median": f.median}
                                             for n, f in bench.figures.items()}, indent=2))
    finally:
        registry.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)


if __name__ == "__main__":
    main()
