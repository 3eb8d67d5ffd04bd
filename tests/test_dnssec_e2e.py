"""DNSSEC end to end: a real `gslb serve` with a signed zone, validated by BIND's `delv`
with a trust anchor made from `gslb dnssec ds`: static, steered for resolvers in two
regions, after a failover, NXDOMAIN and NODATA, a CNAME, a delegation's DS proof; then a
CSK rollover by the runbook (start, reload, finish, reload) with validation at each step.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Served, copy_sample, start_serve

pytestmark = pytest.mark.skipif(shutil.which("delv") is None, reason="delv (bind9-dnsutils)")

ZONE = "gslb.example.com."
TOKEN = "dnssec-test-token"
EU_RESOLVER, US_RESOLVER = "127.0.0.2", "127.0.0.3"
EU = {"198.51.100.10", "198.51.100.11"}
US = {"192.0.2.10", "192.0.2.11"}


def gslb(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gslb", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def signed_sample(directory: Path) -> Path:
    copy_sample(directory)
    zone = directory / "gslb.example.com.yaml"
    text = zone.read_text().replace(
        "records:\n", "records:\n  child: {NS: [ns1.child.example.net.]}\n", 1
    )
    zone.write_text(text + "dnssec: {algorithm: ECDSAP256SHA256, keys: keys}\n")
    # Resolvers on two loopback addresses stand for two continents (`serves: networks`).
    for region, resolver in (("eu-west", EU_RESOLVER), ("us-east", US_RESOLVER)):
        path = directory / "regions" / f"{region}.yaml"
        path.write_text(
            path.read_text().replace("serves: {", f'serves: {{networks: ["{resolver}/32"], ', 1)
        )
    settings = directory / "gslb.yaml"
    settings.write_text(settings.read_text().replace("rate_limit:", "# rate_limit:"))
    return directory


def anchors(directory: Path, config: Path) -> Path:
    """A delv trust-anchor file holding the DS records `gslb dnssec ds` prints."""
    lines = []
    for line in gslb("dnssec", "ds", ZONE, "--config", str(config)).splitlines():
        words = line.split()
        if words[2] == "DS":
            tag, algorithm, digest_type, digest = words[3:7]
            lines.append(f'"{ZONE}" static-ds {tag} {algorithm} {digest_type} "{digest}";')
    assert lines
    path = directory / f"anchors-{len(list(directory.glob('anchors-*')))}.conf"
    path.write_text("trust-anchors {\n" + "\n".join(lines) + "\n};\n")
    return path


def delv(
    served: Served, anchor: Path, name: str, rdtype: str = "A", source: str = "127.0.0.1"
) -> tuple[str, list[str]]:
    """delv's verdict line and the records it printed (comments dropped)."""
    command = ["delv", "@127.0.0.1", "-p", str(served.dns_port), "-b", source]
    command += ["-a", str(anchor), f"+root={ZONE}", "+nocrypto", name, rdtype]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = (done.stdout + done.stderr).splitlines()
    verdicts = [line for line in lines if "validated" in line or "validation" in line]
    records = [line for line in done.stdout.splitlines() if line and not line.startswith(";")]
    return (verdicts[0] if verdicts else "\n".join(lines)), records


def addresses(records: list[str]) -> set[str]:
    return {line.split()[-1] for line in records if line.split()[3] == "A"}


def api(served: Served, method: str, path: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.api_port}{path}",
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, object] = json.loads(response.read())
        return result


def metrics(served: Served) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{served.api_port}/metrics", timeout=5) as r:
        return str(r.read().decode())


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    config = signed_sample(tmp_path / "zones")
    created = gslb("dnssec", "keygen", ZONE, "--config", str(config))
    assert "created key" in created
    served = start_serve(config, env={"GSLB_API_TOKEN": TOKEN})
    yield served, config
    served.stop()


def test_every_kind_of_answer_validates_with_delv(
    signed: tuple[Served, Path], tmp_path: Path
) -> None:
    served, config = signed
    anchor = anchors(tmp_path, config)
    for name, rdtype in [(ZONE, "SOA"), (ZONE, "MX"), (ZONE, "DNSKEY"), (ZONE, "CDS")]:
        verdict, records = delv(served, anchor, name, rdtype)
        assert verdict == "; fully validated", (name, rdtype, verdict)
        assert records
    verdict, records = delv(served, anchor, f"www.{ZONE}", source=EU_RESOLVER)
    assert verdict == "; fully validated" and addresses(records) <= EU and addresses(records)
    verdict, records = delv(served, anchor, f"www.{ZONE}", source=US_RESOLVER)
    assert verdict == "; fully validated" and addresses(records) <= US and addresses(records)
    verdict, records = delv(served, anchor, f"docs.{ZONE}", source=US_RESOLVER)  # CNAME
    assert verdict == "; fully validated" and any(r.split()[3] == "CNAME" for r in records)
    for name, rdtype in [(f"missing.{ZONE}", "A"), (f"sip.{ZONE}", "TXT"), (f"child.{ZONE}", "DS")]:
        verdict, _ = delv(served, anchor, name, rdtype)
        assert verdict == "; negative response, fully validated", (name, rdtype, verdict)

    # After a failover, European resolvers get another region's answer, signed.
    api(served, "POST", "/v1/regions/eu-west/disable")
    verdict, records = delv(served, anchor, f"www.{ZONE}", source=EU_RESOLVER)
    assert verdict == "; fully validated" and addresses(records) and not addresses(records) & EU

    # The test can fail: an anchor for a key the zone does not have does not validate.
    wrong = tmp_path / "wrong"
    shutil.copytree(config, wrong)
    shutil.rmtree(wrong / "keys")
    gslb("dnssec", "keygen", ZONE, "--config", str(wrong))
    verdict, _ = delv(served, anchors(tmp_path, wrong), ZONE, "SOA")
    assert "fully validated" not in verdict


def test_status_and_metrics_show_keys_and_expiry(signed: tuple[Served, Path]) -> None:
    served, config = signed
    status = api(served, "GET", "/v1/status")
    info = status["dnssec"][ZONE]  # type: ignore[index]
    (key,) = info["keys"]
    assert key["algorithm"] == "ECDSAP256SHA256" and key["state"] == "active"
    assert f"+{key['tag']:05d}.pem" in gslb("dnssec", "keys", ZONE, "--config", str(config))
    days_left = (info["earliest_expiry_unix"] - time.time()) / 86400
    assert 6.9 < days_left <= 7.0  # a week, less the hour's start
    text = metrics(served)
    assert (
        f'gslb_dnssec_key_info{{algorithm="ECDSAP256SHA256",state="active",tag="{key["tag"]}"'
        in text
    )
    assert f'gslb_dnssec_signature_expiry_timestamp_seconds{{zone="{ZONE}"}}' in text


def reload(served: Served) -> None:
    served.process.send_signal(signal.SIGHUP)


def wait_for_keys(served: Served, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = api(served, "GET", "/v1/status")
        keys = status["dnssec"][ZONE]["keys"]  # type: ignore[index]
        if sum(1 for k in keys if k["state"] == "active") == count:
            return
        time.sleep(0.05)  # polling the API: a reload has no event a test can await
    raise AssertionError(f"never {count} active keys")


def test_csk_rollover_by_the_runbook_validates_at_every_step(
    signed: tuple[Served, Path], tmp_path: Path
) -> None:
    served, config = signed
    old = anchors(tmp_path, config)
    out = gslb("dnssec", "rollover", ZONE, "start", "--config", str(config))
    assert "new key" in out
    reload(served)
    wait_for_keys(served, 2)
    both = anchors(tmp_path, config)  # DS for both active keys
    new_tag = int(out.split("new key ")[1].split()[0])
    verdict, records = delv(served, old, ZONE, "CDS")
    assert verdict == "; fully validated"
    assert [r.split()[4] for r in records if r.split()[3] == "CDS"] == [str(new_tag)]  # the new key
    verdict, _ = delv(served, old, f"www.{ZONE}", source=EU_RESOLVER)
    assert verdict == "; fully validated"  # the old DS still works: double signatures
    gslb("dnssec", "rollover", ZONE, "finish", "--config", str(config))
    reload(served)
    wait_for_keys(served, 1)
    new = anchors(tmp_path, config)
    assert new.read_text() != old.read_text() and str(new_tag) in new.read_text()
    for anchor in (new, both):
        verdict, _ = delv(served, anchor, f"www.{ZONE}", source=US_RESOLVER)
        assert verdict == "; fully validated"
    verdict, _ = delv(served, old, ZONE, "SOA")
    assert "fully validated" not in verdict  # the retired key signs nothing any more


def test_workers_sign_with_the_same_keys(tmp_path: Path) -> None:
    config = signed_sample(tmp_path / "zones")
    gslb("dnssec", "keygen", ZONE, "--config", str(config))
    served = start_serve(config, "--workers", "2")
    try:
        anchor = anchors(tmp_path, config)
        for _ in range(6):  # the kernel spreads these over both workers
            verdict, records = delv(served, anchor, f"www.{ZONE}", source=EU_RESOLVER)
            assert verdict == "; fully validated" and addresses(records) <= EU
    finally:
        served.stop()
