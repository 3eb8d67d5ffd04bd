"""Where a proxied request's time goes: CPU µs per request, user and kernel, of `gslb proxy`.

    .venv/bin/python bench/proxy/cpu.py [--duration 5] [--rounds 2] [--variants gslb gslb-full]
    .venv/bin/python bench/proxy/cpu.py --reference /path/to/other/checkout   # A/B, same run
    .venv/bin/python bench/proxy/cpu.py --variants gslb-full --profile py-spy  # top functions
    .venv/bin/python bench/proxy/cpu.py --variants gslb-full --profile cprofile

The same layout as bench/proxy/run.py (proxy alone on core 0; wrk and the nginx backends on
core 1; keep-alive, 50 connections), but what is measured is the proxy process's CPU time
over the wrk run (utime and stime from /proc/PID/stat, before and after) divided by the
requests wrk counted, with HAProxy (`nbthread 1`, as in run.py) measured the same way in each
round as the reference. That figure moves less than requests/s when other work on the
machine takes turns on the proxy's core, but it does move: fewer events per wake-up cost
more system calls per request. With `--reference DIR` each round runs the other
checkout's code too (through PYTHONPATH), interleaved with this one, for a same-run A/B.
`--profile py-spy` samples the proxy (py-spy, `pip install py-spy`) and prints the functions
with the most samples, self and inclusive; `--profile cprofile` runs it under cProfile
(deterministic, but it slows calls down, so it overstates small functions).
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.proxy.run import (  # noqa: E402
    BACKEND_PORTS,
    LOAD_CORE,
    PROXY_CORE,
    PROXY_PORTS,
    backends_conf,
    gslb_config,
    need,
    process,
    wrk,
)
from bench.proxy.run import proxy_command as reference_command  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Cost:
    code: str
    variant: str
    requests: int
    rps: float
    user_us: float  # CPU µs per request in user mode
    system_us: float  # and in the kernel


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of `pid` in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12])


def proxy_command(variant: str, tmp: Path, profile_out: Path | None) -> list[str]:
    if variant == "haproxy":
        return reference_command(variant, tmp)
    config = str(gslb_config(tmp, variant))
    call = f"main({config!r}, 'bench', None, None)"
    if profile_out is not None:  # main returns after SIGTERM's drain: the profile is written
        code = (
            "import cProfile; from gslb.proxy.app import main; "
            f"cProfile.run({call!r}, {str(profile_out)!r})"
        )
    else:
        code = f"import sys; from gslb.proxy.app import main; sys.exit({call})"
    # -P: no current directory on sys.path, so gslb comes from PYTHONPATH (the code measured)
    return ["taskset", "-c", PROXY_CORE, sys.executable, "-P", "-c", code]


def requests_of(text: str) -> int:
    m = re.search(r"(\d+) requests in", text)
    if not m:
        raise RuntimeError(f"no request count in wrk output:\n{text}")
    return int(m.group(1))


def measure(
    code: Path, variant: str, tmp: Path, duration: float, profile: str | None
) -> tuple[Cost, list[str]]:
    os.environ["PYTHONPATH"] = str(code)
    port = PROXY_PORTS[variant]
    tmp = tmp / f"{code.name}-{variant}"
    tmp.mkdir()
    prof = tmp / f"{variant}.prof" if profile == "cprofile" else None
    report: list[str] = []
    with process(proxy_command(variant, tmp, prof), port, tmp / f"{variant}.log") as proc:
        wrk(port, 50, 1.0)  # warm-up: pooled connections, caches
        before = cpu_ticks(proc.pid)
        spy = None
        if profile == "py-spy":
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(proc.pid), "-d", str(round(duration)),
                 "-f", "raw", "-o", str(tmp / "spy.txt"), "-r", "1000", "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        out = wrk(port, 50, duration)
        after = cpu_ticks(proc.pid)
        if spy is not None:
            spy.wait()
            report = spy_top(tmp / "spy.txt")
    if prof is not None:
        report = cprofile_top(prof)
    n = requests_of(out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    per = 1e6 / TICKS / n
    cost = Cost(
        code.name, variant, n, rps, (after[0] - before[0]) * per, (after[1] - before[1]) * per
    )
    return cost, report


def spy_top(path: Path, most: int = 25) -> list[str]:
    """The functions with the most samples: self (the frame running) and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        # "func (path/file.py:line)" -> "func (file.py)": samples summed per function
        frames = [re.sub(r" \((?:.*/)?([^/:]*):\d+\)", r" (\1)", f) for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            within[f] += n
    lines = [f"py-spy: {total} samples; self %, inclusive %, function (file:line)"]
    for f, n in own.most_common(most):
        lines.append(f"{100 * n / total:5.1f} {100 * within[f] / total:5.1f}  {f}")
    return lines


def cprofile_top(path: Path, most: int = 25) -> list[str]:
    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in rows) or 1.0
    lines = ["cProfile: tottime %, calls, function"]
    for (file, line, name), (_, calls, tottime, _, _) in rows[:most]:
        lines.append(f"{100 * tottime / total:5.1f} {calls:>9}  {name} ({Path(file).name}:{line})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--variants", nargs="*", default=["haproxy", "gslb", "gslb-full"],
                        choices=["haproxy", "gslb", "gslb-full"])  # fmt: skip
    parser.add_argument("--reference", type=Path, help="another checkout to compare with")
    parser.add_argument("--profile", choices=["py-spy", "cprofile"])
    args = parser.parse_args()
    need("wrk", "nginx", "taskset", *(["py-spy"] if args.profile == "py-spy" else []))
    codes = [ROOT] + ([args.reference.resolve()] if args.reference else [])
    print(f"proxy on core {PROXY_CORE}, wrk -c50 and nginx backends on core {LOAD_CORE}")
    print("| round | code | variant | requests | req/s | user µs/req | kernel µs/req | total |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for n in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory(prefix="gslb-cpu-") as t:
            tmp = Path(t)
            backends = ["taskset", "-c", LOAD_CORE, "nginx", "-c", str(backends_conf(tmp)), "-p", t]
            with process(backends, BACKEND_PORTS[0], tmp / "backends.log"):
                for variant in args.variants:
                    for code in codes[:1] if variant == "haproxy" else codes:
                        profile = None if variant == "haproxy" else args.profile
                        c, report = measure(code, variant, tmp, args.duration, profile)
                        print(
                            f"| {n} | {c.code} | {c.variant} | {c.requests:,} | {c.rps:,.0f} "
                            f"| {c.user_us:.1f} | {c.system_us:.1f} "
                            f"| {c.user_us + c.system_us:.1f} |"
                        )
                        for line in report:
                            print("   ", line)
                        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
