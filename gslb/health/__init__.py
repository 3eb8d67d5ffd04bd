"""Health checks: a pure rise/fall tracker, async probes (http, https, tcp) and a scheduler.

    from gslb.health import CheckSpec, Prober, Scheduler, Target

    async with Prober() as prober:
        scheduler = Scheduler(prober, on_change=lambda key, health: ...)
        scheduler.set_targets([Target("eu-west/192.0.2.10", spec, "192.0.2.10")])
        await scheduler.start()
        ...
        await scheduler.stop()

Each module's docstring documents its part of the API: tracker (Health, INITIAL, observe),
probes (Prober, ProbeResult), scheduler (Scheduler, Target).
"""

from gslb.health.probes import Prober, ProbeResult
from gslb.health.scheduler import Scheduler, Target
from gslb.health.tracker import INITIAL, Health, observe
from gslb.model import CheckSpec

__all__ = [
    "INITIAL",
    "CheckSpec",
    "Health",
    "ProbeResult",
    "Prober",
    "Scheduler",
    "Target",
    "observe",
]
