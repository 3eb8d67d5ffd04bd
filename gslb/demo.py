"""`gslb demo`: the whole topology on loopback, from the shipped zones/.

It writes a config directory derived from zones/ (see `gslb.demo_layout`) into a
temporary directory, runs the backends in this process, starts one `gslb proxy`
per region and one `gslb serve` as child processes, waits until DNS sees every
region healthy, and prints what to try. SIGINT/SIGTERM/SIGHUP stops every child it
started (DNS first, then the proxies, which drain), then the backends, and removes the
temporary directory, whenever it comes (see `gslb.demo_stop`).

The children run in their own sessions, so Ctrl-C in the terminal reaches only
this process, which then stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import secrets
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

import aiohttp
from aiohttp import web

from gslb.config import load_config
from gslb.demo_backend import start_backend
from gslb.demo_layout import DemoLayout, DemoPorts, plan_demo, steered_name
from gslb.demo_ports import choose_ports
from gslb.demo_stop import (
    Terminated,
    restore_signals,
    stop_on_signals,
    temporary_directory,
    terminated_raises,
)
from gslb.demo_text import CLIENTS, FAILOVER_CLIENT, Expected, instructions
from gslb.explain import explain
from gslb.geo import NoGeo, open_geo
from gslb.model import Config
from gslb.plan import compile_plan
from gslb.state import AdminState, State, View

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL = 0.2
DEMO_DB = Path(__file__).resolve().parent.parent / "geodata" / "demo-city.mmdb"
PORT_FLAGS = {
    "DNS": "--dns-port",
    "admin API": "--api-port",
    "proxy": "--proxy-port",
    "proxy admin": "--proxy-port (a proxy's admin port is the next one)",
    "backend": "--backend-port",
}


class DemoFailed(Exception):
    """The demo could not start; the message says why."""


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path


def _geoip(config: Config) -> str | None:
    configured = config.settings.geoip_database
    if configured and Path(configured).is_file():
        return str(Path(configured).resolve())
    return str(DEMO_DB) if DEMO_DB.is_file() else None


def _flag(what: str) -> str:
    for key in ("proxy admin", "proxy", "backend", "admin API", "DNS"):
        if key in what:
            return PORT_FLAGS[key]
    return "another port"


def busy_listener(layout: DemoLayout) -> str | None:
    """A message naming the first address the demo needs that is taken, or None."""
    for what, where, protocol in layout.listeners():
        family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        with socket.socket(family, kind) as sock:
            if protocol == "tcp":
                # As the servers will: a port in TIME_WAIT is free, a listener is not.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((where.host, where.port))
            except OSError as exc:
                return (
                    f"gslb demo: cannot use {where} ({protocol.upper()}) for the {what}: "
                    f"{exc.strerror or exc}. Another program has it; stop that program "
                    f"or choose another port with {_flag(what)}."
                )
    return None


def expected_answers(config: Config) -> Expected:
    """Which region the printed dig lines get, by running the server's own selection."""
    geo = open_geo(config.settings.geoip_database)
    lookup = None if isinstance(geo, NoGeo) else geo
    rng = random.Random(0)
    name = steered_name(config)
    try:
        plan = compile_plan(config)
        regions = {
            subnet: explain(View(plan, State()), lookup, name, subnet, "A", rng)["region"]
            for _, subnet in CLIENTS
        }
        failover_to = None
        europe = regions.get(FAILOVER_CLIENT)
        if europe is not None:
            state = State(admin=AdminState().with_region(europe, "disabled"))
            failover_to = explain(View(plan, state), lookup, name, FAILOVER_CLIENT, "A", rng)[
                "region"
            ]
        return Expected(regions, failover_to)
    finally:
        geo.close()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


PR_SET_PDEATHSIG = 1  # prctl(2)


def _exit_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel send a child SIGTERM when this process dies, even
    by SIGKILL, so a killed demo leaves no servers holding its ports (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent:  # the demo died before the line above ran
            os._exit(1)

    return arm


async def _spawn(name: str, args: Sequence[str], env: Mapping[str, str], logs: Path) -> Child:
    log = logs / f"{name}.log"
    handle: IO[bytes]
    with open(log, "wb") as handle:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gslb",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=handle,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
            preexec_fn=_exit_with_parent(),
        )
    return Child(name, process, log)


def _exited(children: Sequence[Child]) -> Child | None:
    return next((c for c in children if c.process.returncode is not None), None)


def _all_up(status: Mapping[str, object]) -> bool:
    regions = status.get("regions")
    if not isinstance(regions, list) or not regions:
        return False
    return all(
        region.get("usable") and all(e.get("health") == "up" for e in region.get("endpoints", []))
        for region in regions
        if isinstance(region, dict)
    )


async def _wait_ready(layout: DemoLayout, children: Sequence[Child], stop: asyncio.Event) -> None:
    """Until DNS sees every region up; DemoFailed when a child dies or it takes too long."""
    url = f"http://{layout.api}/v1/status"
    deadline = time.monotonic() + READY_TIMEOUT
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            dead = _exited(children)
            if dead is not None:
                raise DemoFailed(
                    f"gslb demo: {dead.name} exited with status {dead.process.returncode}; "
                    f"its log:\n{_tail(dead.log)}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                async with session.get(url) as response:
                    if response.status == 200 and _all_up(await response.json()):
                        return
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"gslb demo: not every region was healthy after {READY_TIMEOUT:g}s; "
                    f"see {url} and the logs in {children[0].log.parent}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL)


async def _stop_children(children: Sequence[Child]) -> None:
    for child in children:
        if child.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            await asyncio.wait_for(child.process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            await child.process.wait()


async def _until_stop_or_exit(children: Sequence[Child], stop: asyncio.Event) -> Child | None:
    waits = [asyncio.ensure_future(c.process.wait()) for c in children]
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopped, *waits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stopped, *waits):
            task.cancel()
    return None if stop.is_set() else _exited(children)


async def _run(
    layout: DemoLayout, workdir: Path, env: Mapping[str, str], banner: str, out: TextIO
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    previous = stop_on_signals(loop, stop)
    logs = workdir / "logs"
    logs.mkdir()
    backends: list[web.AppRunner] = []
    children: list[Child] = []
    status = 0
    try:
        for region in layout.regions:
            for b in region.backends:
                backends.append(await start_backend(b.region, b.name, b.listen.host, b.listen.port))
        config = ["--config", str(workdir)]
        children.append(await _spawn("serve", ["serve", *config], env, logs))
        for region in layout.regions:
            args = ["proxy", *config, "--region", region.name]
            children.append(await _spawn(f"proxy-{region.name}", args, env, logs))
        print(
            f"gslb demo: starting DNS, {len(layout.regions)} proxies and their backends ...",
            file=out,
            flush=True,
        )
        await _wait_ready(layout, children, stop)
        if not stop.is_set():
            print(banner, file=out, flush=True)
            dead = await _until_stop_or_exit(children, stop)
            if dead is not None:
                print(
                    f"gslb demo: {dead.name} exited with status {dead.process.returncode}; "
                    f"stopping the rest. Its log:\n{_tail(dead.log)}",
                    file=sys.stderr,
                )
                status = 1
    except DemoFailed as exc:
        print(exc, file=sys.stderr)
        status = 1
    except OSError as exc:
        print(f"gslb demo: cannot start a backend: {exc}", file=sys.stderr)
        status = 1
    finally:
        await _stop_children(children)
        for runner in backends:
            await runner.cleanup()
        restore_signals(loop, previous)
    print("gslb demo: stopped", file=out, flush=True)
    return status


def run_demo(
    config_dir: str,
    *,
    dns_port: int,
    api_port: int,
    proxy_port: int = 8080,
    backend_port: int = 8000,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the demo in the foreground until SIGINT/SIGTERM/SIGHUP; 0 after a clean stop,
    1 if not."""
    out = out or sys.stdout
    admin_port = proxy_port + 1 if proxy_port else 0
    ports = DemoPorts(dns_port, api_port, proxy_port, admin_port, backend_port)
    if any(not 0 <= p <= 65535 for p in (dns_port, api_port, proxy_port, admin_port, backend_port)):
        print("gslb demo: ports must be between 0 (any free port) and 65535", file=sys.stderr)
        return 2
    env = dict(os.environ if environ is None else environ)
    config = load_config(config_dir)
    token_env = config.settings.token_env
    token = env.get(token_env, "").strip()
    generated = not token
    if generated:
        token = secrets.token_urlsafe(18)
    env[token_env] = token
    # The children run `python -m gslb`: let them import this very package from any cwd.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    try:
        with terminated_raises():
            return _run_in_workdir(config, ports, env, token, generated, out)
    except Terminated:
        print("gslb demo: stopped", file=out, flush=True)
        return 0


def _run_in_workdir(
    config: Config,
    ports: DemoPorts,
    env: Mapping[str, str],
    token: str,
    generated: bool,
    out: TextIO,
) -> int:
    """The demo in a new temporary directory, removed however the demo ends but SIGKILL."""
    with temporary_directory("gslb-demo-") as workdir:
        tmp = str(workdir)
        geoip, state_path = _geoip(config), str(workdir / "state.json")
        try:
            layout = plan_demo(config, ports, geoip=geoip, state_path=state_path)
            if 0 in (ports.dns, ports.api, ports.proxy, ports.backend):
                ports = choose_ports(layout, ports)
                layout = plan_demo(config, ports, geoip=geoip, state_path=state_path)
        except ValueError as exc:
            print(f"gslb demo: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"gslb demo: cannot choose a free port: {exc}", file=sys.stderr)
            return 1
        busy = busy_listener(layout)
        if busy:
            print(busy, file=sys.stderr)
            return 1
        for name, text in layout.files.items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(text, encoding="utf-8")
        for zone_file in layout.zone_files:
            (workdir / Path(zone_file).name).write_bytes(Path(zone_file).read_bytes())
        generated_config = load_config(str(workdir))
        banner = instructions(layout, token, generated, expected_answers(generated_config), tmp)
        return asyncio.run(_run(layout, workdir, env, banner, out))
