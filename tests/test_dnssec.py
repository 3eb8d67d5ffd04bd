"""DNSSEC in the pure parts and the responder: wire forms against dnspython's, every kind of
answer validated with `dns.dnssec.validate` against the zone's DNSKEY (both algorithms),
compact denial, replies without DO unchanged, and cached signed answers equal to the full
path's, byte for byte."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings

from gslb.config import load_config
from gslb.dns.responder import Responder
from gslb.dnssec.keys import generate_key, load_keys
from gslb.dnssec.signer import VALIDITY, validity
from gslb.dnssec.wire import ECDSAP256SHA256, ED25519, ds_rdata, key_tag, type_bitmap
from gslb.errors import ConfigError
from gslb.geo import GeoDatabase
from gslb.plan import compile_plan
from gslb.state import AdminState, State, View
from tests.conftest import DEMO_DB, write_config
from tests.test_dns_fastpath import REGIONS, ZONE, FixedRandom, queries, steered_queries

ORIGIN = dns.name.from_text("gslb.example.com.")
NOW = 1_800_000_000.0  # a fixed wall clock: signatures are made at this time
EU = {"192.0.2.10", "192.0.2.11"}
US = {"198.51.100.10"}


def signed_config(directory: Path, algorithm: str = "ECDSAP256SHA256") -> Path:
    zone = ZONE.replace("MIDTXT", "[short]") + f"dnssec: {{algorithm: {algorithm}}}\n"
    files = {"gslb.example.com.yaml": zone}
    files.update({f"regions/{name}.yaml": text for name, text in REGIONS.items()})
    return write_config(directory, files)


@pytest.fixture(scope="module")
def geo() -> GeoDatabase:
    return GeoDatabase(str(DEMO_DB))


@pytest.fixture(scope="module", params=["ECDSAP256SHA256", "ED25519"])
def signed_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return signed_config(tmp_path_factory.mktemp("signed"), request.param)


def responder_for(directory: Path, geo: GeoDatabase, state: State | None = None) -> Responder:
    view = View(compile_plan(load_config(str(directory))), state or State())
    return Responder(lambda: view, geo, rng=FixedRandom(), wall_clock=lambda: NOW)


def ask(
    responder: Responder, name: str, rdtype: str, subnet: str | None = None, do: bool = True
) -> dns.message.Message:
    options = [] if subnet is None else [dns.edns.ECSOption(subnet, 24)]
    query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=do, options=options)
    wire = responder.handle_wire(query.to_wire(), "127.0.0.1")
    assert wire is not None
    return dns.message.from_wire(wire)


def zone_keys(responder: Responder) -> dict[dns.name.Name, dns.rrset.RRset]:
    reply = ask(responder, "gslb.example.com.", "DNSKEY")
    dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    return {ORIGIN: dnskey}


def validate_all(reply: dns.message.Message, keys: dict[dns.name.Name, dns.rrset.RRset]) -> int:
    """Validate every signed RRset of the answer and authority sections; each RRset of ours
    must carry an RRSIG (but NS of a referral, which is the child's). Returns how many."""
    checked = 0
    for section in (reply.answer, reply.authority):
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            sigs = [
                s
                for s in section
                if s.rdtype == dns.rdatatype.RRSIG and s.covers == rrset.rdtype
                and s.name == rrset.name
            ]  # fmt: skip
            if rrset.rdtype == dns.rdatatype.NS and rrset.name != ORIGIN:
                assert not sigs, "a delegation's NS is the child's: never signed"
                continue
            assert sigs, f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} is not signed"
            dns.dnssec.validate(rrset, sigs[0], keys, now=NOW)
            for sig in sigs[0]:
                assert sig.original_ttl == rrset.ttl == sigs[0].ttl  # RFC 4035 §2.2
            checked += 1
    return checked


def nsec_of(reply: dns.message.Message) -> tuple[str, str, set[str]]:
    found = [r for r in reply.authority if r.rdtype == dns.rdatatype.NSEC]
    assert len(found) == 1, reply
    rd = found[0][0]
    types = {dns.rdatatype.to_text(t) for w in rd.windows for t in _types_in(w)}
    return found[0].name.to_text(), rd.next.to_text(), types


def _types_in(window: tuple[int, bytes]) -> list[int]:
    number, bits = window
    return [
        number * 256 + i * 8 + b for i, octet in enumerate(bits) for b in range(8)
        if octet & (0x80 >> b)
    ]  # fmt: skip


# -- wire forms against dnspython --------------------------------------------------------


def test_key_tag_ds_and_bitmap_match_dnspython(tmp_path: Path) -> None:
    for algorithm in (ECDSAP256SHA256, ED25519):
        key = generate_key(str(tmp_path / str(algorithm)), "gslb.example.com.", algorithm)
        text = f"257 3 {algorithm} {base64.b64encode(key.dnskey[4:]).decode()}"
        rd = dns.rdata.from_text("IN", "DNSKEY", text)
        assert key.tag == key_tag(key.dnskey) == dns.dnssec.key_id(rd)  # type: ignore[arg-type]
        ours = ds_rdata("gslb.example.com.", key.dnskey)
        theirs = dns.dnssec.make_ds(ORIGIN, rd, "SHA256")
        assert ours == theirs.to_wire()
    nsec = dns.rdata.from_text("IN", "NSEC", "x.example. A NS SOA MX TXT AAAA RRSIG NSEC TYPE128")
    assert (
        type_bitmap([1, 2, 6, 15, 16, 28, 46, 47, 128])
        == nsec.to_wire()[len(b"\x01x\x07example\x00") :]
    )


def test_keys_are_private_files_and_reload_as_made(tmp_path: Path) -> None:
    key = generate_key(str(tmp_path / "keys"), "gslb.example.com.", ECDSAP256SHA256)
    mode = stat.S_IMODE(os.stat(key.path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    (loaded,) = load_keys(str(tmp_path / "keys"), "gslb.example.com.")
    assert (loaded.tag, loaded.dnskey, loaded.state) == (key.tag, key.dnskey, "active")
    assert loaded.sign(b"data") == key.sign(b"data")  # deterministic ECDSA (RFC 6979)


# -- config ------------------------------------------------------------------------------


def test_first_load_creates_one_key_and_later_loads_reuse_it(tmp_path: Path) -> None:
    directory = signed_config(tmp_path)
    first = load_config(str(directory)).zones[0].dnssec
    again = load_config(str(directory)).zones[0].dnssec
    assert first is not None and again is not None
    assert len(first.keys) == 1 and [k.tag for k in again.keys] == [first.keys[0].tag]
    assert first.directory == str(directory / "keys")


@pytest.mark.parametrize(
    ("block", "extra", "message"),
    [
        ("dnssec: {algorithm: RSASHA1}", {}, "RSASHA1"),
        ("dnssec: {denial: nsec3}", {}, "nsec3"),
        ("dnssec: {keys: k}", {"k/Kgslb.example.com.+013+00001.pem": "not a key\n"}, "k/K"),
    ],
)
def test_bad_dnssec_blocks_are_refused_with_file_and_line(
    tmp_path: Path, block: str, extra: dict[str, str], message: str
) -> None:
    zone = ZONE.replace("MIDTXT", "[short]") + block + "\n"
    files = {"gslb.example.com.yaml": zone, **extra}
    files.update({f"regions/{name}.yaml": text for name, text in REGIONS.items()})
    with pytest.raises(ConfigError) as caught:
        load_config(str(write_config(tmp_path, files)))
    text = str(caught.value.problems[0])
    line = zone.lstrip().count("\n")  # the dnssec: line is the zone file's last
    assert "gslb.example.com.yaml:" in text and message in text, text
    assert f":{line}:" in text, text


def test_with_a_cluster_no_key_is_made_on_one_node(tmp_path: Path) -> None:
    directory = signed_config(tmp_path)
    (directory / "gslb.yaml").write_text(
        "cluster: {node: a, etcd: {endpoints: ['http://127.0.0.1:9']}}\n"
    )
    with pytest.raises(ConfigError, match="gslb dnssec keygen"):
        load_config(str(directory))
    assert not (directory / "keys").exists()


def test_a_key_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    directory = signed_config(tmp_path, "ED25519")
    generate_key(str(directory / "keys"), "gslb.example.com.", ECDSAP256SHA256)
    with pytest.raises(ConfigError, match="algorithm rollover is not supported"):
        load_config(str(directory))


# -- every kind of answer, validated ------------------------------------------------------


def test_dnskey_cds_cdnskey_at_the_apex(signed_dir: Path, geo: GeoDatabase) -> None:
    responder = responder_for(signed_dir, geo)
    keys = zone_keys(responder)
    (dnskey,) = keys[ORIGIN]
    for rdtype in ("DNSKEY", "CDS", "CDNSKEY", "SOA", "NS", "MX"):
        reply = ask(responder, "gslb.example.com.", rdtype)
        assert reply.rcode() == dns.rcode.NOERROR and validate_all(reply, keys) == 1, rdtype
    cds = ask(responder, "gslb.example.com.", "CDS").answer[0][0]
    assert cds.to_wire() == dns.dnssec.make_ds(ORIGIN, dnskey, "SHA256").to_wire()  # the key
    cdnskey = ask(responder, "gslb.example.com.", "CDNSKEY").answer[0][0]
    assert cdnskey.to_wire() == dnskey.to_wire()


@pytest.mark.parametrize(("subnet", "region"), [("81.2.69.0", EU), ("8.8.8.0", US)])
def test_steered_answers_for_two_continents_are_signed(
    signed_dir: Path, geo: GeoDatabase, subnet: str, region: set[str]
) -> None:
    responder = responder_for(signed_dir, geo)
    keys = zone_keys(responder)
    for _ in range(2):  # computed, then from the cache
        reply = ask(responder, "www.gslb.example.com.", "A", subnet)
        assert {rd.to_text() for rd in reply.answer[0]} <= region
        assert validate_all(reply, keys) == 1


def test_answers_after_a_failover_are_signed(signed_dir: Path, geo: GeoDatabase) -> None:
    admin = AdminState(regions={"eu": "disabled"})
    responder = responder_for(signed_dir, geo, State(1, frozenset(), admin))
    reply = ask(responder, "www.gslb.example.com.", "A", "81.2.69.0")
    assert {rd.to_text() for rd in reply.answer[0]} & EU == set()  # Europe went elsewhere
    assert validate_all(reply, zone_keys(responder)) == 1


def test_nxdomain_is_compact_denial(signed_dir: Path, geo: GeoDatabase) -> None:
    responder = responder_for(signed_dir, geo)
    reply = ask(responder, "missing.gslb.example.com.", "A")
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer  # RFC 9824: NODATA form
    assert validate_all(reply, zone_keys(responder)) == 2  # SOA and NSEC
    owner, next_name, types = nsec_of(reply)
    assert owner == "missing.gslb.example.com."
    assert next_name == "\\000.missing.gslb.example.com."  # covers nothing but the name
    assert types == {"RRSIG", "NSEC", "NXNAME"}
    unsigned = ask(responder, "missing.gslb.example.com.", "A", do=False)
    assert unsigned.rcode() == dns.rcode.NXDOMAIN  # without DO: as before


@pytest.mark.parametrize(
    ("name", "rdtype", "present"),
    [
        ("mail.gslb.example.com.", "TXT", {"A"}),
        ("www.gslb.example.com.", "MX", {"A", "AAAA"}),  # a service: its families
        ("gslb.example.com.", "A", {"SOA", "NS", "MX", "TXT", "DNSKEY", "CDS", "CDNSKEY"}),
        ("_tcp.gslb.example.com.", "A", set()),  # no such name among the records: NXNAME
    ],
)
def test_nodata_lists_the_types_at_the_name(
    signed_dir: Path, geo: GeoDatabase, name: str, rdtype: str, present: set[str]
) -> None:
    responder = responder_for(signed_dir, geo)
    reply = ask(responder, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    assert validate_all(reply, zone_keys(responder)) == 2
    _, _, types = nsec_of(reply)
    assert types - {"RRSIG", "NSEC"} == (present or {"NXNAME"})


def test_cname_chain_is_signed_link_by_link(signed_dir: Path, geo: GeoDatabase) -> None:
    responder = responder_for(signed_dir, geo)
    reply = ask(responder, "docs.gslb.example.com.", "A", "81.2.69.0")
    assert [r.rdtype for r in reply.answer if r.rdtype != dns.rdatatype.RRSIG] == [
        dns.rdatatype.CNAME,
        dns.rdatatype.A,
    ]
    assert validate_all(reply, zone_keys(responder)) == 2


def test_referral_proves_there_is_no_ds(signed_dir: Path, geo: GeoDatabase) -> None:
    responder = responder_for(signed_dir, geo)
    reply = ask(responder, "host.sub.gslb.example.com.", "A")
    assert not reply.flags & dns.flags.AA
    assert validate_all(reply, zone_keys(responder)) == 1  # the NSEC; NS stays unsigned
    owner, _, types = nsec_of(reply)
    assert owner == "sub.gslb.example.com." and types == {"NS", "RRSIG", "NSEC"}
    glue = [r for r in reply.additional if r.rdtype == dns.rdatatype.RRSIG]
    assert not glue  # glue is the child's too
    ds = ask(responder, "sub.gslb.example.com.", "DS")  # the parent side answers DS
    assert ds.flags & dns.flags.AA and validate_all(ds, zone_keys(responder)) == 2
    assert "DS" not in nsec_of(ds)[2]


def test_without_do_the_reply_is_the_unsigned_zones(
    signed_dir: Path, tmp_path: Path, geo: GeoDatabase
) -> None:
    signed = responder_for(signed_dir, geo)
    plain_dir = write_config(
        tmp_path,
        {
            "gslb.example.com.yaml": ZONE.replace("MIDTXT", "[short]"),
            **{f"regions/{n}.yaml": t for n, t in REGIONS.items()},
        },
    )
    plain = responder_for(plain_dir, geo)
    questions = [
        ("www.gslb.example.com.", "A"),
        ("missing.gslb.example.com.", "A"),
        ("gslb.example.com.", "SOA"),
        ("host.sub.gslb.example.com.", "A"),
    ]
    for name, rdtype in questions:
        query = dns.message.make_query(name, rdtype, use_edns=0)
        assert signed.handle_wire(query.to_wire(), "127.0.0.1") == plain.handle_wire(
            query.to_wire(), "127.0.0.1"
        )


def test_validity_is_whole_hours_around_now() -> None:
    inception, expiration = validity(NOW)
    assert inception % 3600 == 0 and inception <= NOW - 3600 < inception + 3600
    assert expiration - inception == VALIDITY + 3600


def test_cached_signed_answers_equal_the_full_paths(signed_dir: Path, geo: GeoDatabase) -> None:
    fast = responder_for(signed_dir, geo)
    full = responder_for(signed_dir, geo)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(queries())
    def check(query: tuple[bytes, str]) -> None:
        wire, peer = query
        for _ in range(3):
            assert fast.handle_wire(wire, peer) == full.answer_full(wire, peer), wire.hex()

    check()
    assert fast.cache.hits > 100

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(steered_queries())
    def check_networks(wire: bytes) -> None:  # signed answers shared between networks
        for _ in range(2):
            assert fast.handle_wire(wire, "127.0.0.1") == full.answer_full(wire, "127.0.0.1")

    check_networks()


def test_the_runtime_re_signs_every_hour(signed_dir: Path) -> None:
    from gslb.runtime import Runtime

    runtime = Runtime(str(signed_dir))
    clock = [NOW]
    runtime.wall_clock = lambda: clock[0]
    runtime.resigned_at = NOW
    query = dns.message.make_query("gslb.example.com.", "SOA", use_edns=0, want_dnssec=True)

    def inception() -> int:
        wire = runtime.responder.handle_wire(query.to_wire(), "127.0.0.1")
        assert wire is not None
        reply = dns.message.from_wire(wire)
        sig = next(r for r in reply.answer if r.rdtype == dns.rdatatype.RRSIG)
        return int(sig[0].inception)

    first = inception()
    assert first == inception()  # cached
    clock[0] = NOW + 1800 if (NOW // 3600) == ((NOW + 1800) // 3600) else NOW + 60
    assert not runtime.resign_if_due() and inception() == first  # the same hour
    plan = runtime.view().plan
    clock[0] = NOW + 3600
    assert runtime.resign_if_due() and runtime.view().plan is not plan
    assert inception() == first + 3600  # the cache dropped it: signed afresh
    status = runtime.status()["dnssec"]["gslb.example.com."]
    assert status["earliest_expiry_unix"] == validity(NOW + 3600)[1]


def test_an_explicit_nxname_query_is_formerr(signed_dir: Path, geo: GeoDatabase) -> None:
    responder = responder_for(signed_dir, geo)
    for do in (True, False):  # RFC 9824 §3.5: whatever the DO bit
        for _ in range(2):  # computed, then from the cache
            reply = ask(responder, "www.gslb.example.com.", "TYPE128", do=do)
            assert reply.rcode() == dns.rcode.FORMERR and not reply.answer
    assert ask(responder, "www.gslb.example.com.", "TYPE127").rcode() == dns.rcode.NOERROR


def test_a_pre_published_key_is_the_one_a_rollover_activates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gslb.cli import main

    directory = signed_config(tmp_path)
    (first,) = load_config(str(directory)).zones[0].dnssec.keys  # type: ignore[union-attr]
    assert (
        main(["dnssec", "keygen", "gslb.example.com", "--publish", "--config", str(directory)]) == 0
    )
    keys = load_keys(str(directory / "keys"), "gslb.example.com.")
    assert [k.state for k in keys] == ["active", "published"]
    zone = compile_plan(load_config(str(directory))).zones["gslb.example.com."]
    assert len(zone.nodes["gslb.example.com."].rrsets[48].rdatas) == 2  # both in DNSKEY
    assert zone.signer is not None and [k.tag for k in zone.signer.keys] == [first.tag]
    capsys.readouterr()
    assert (
        main(["dnssec", "rollover", "gslb.example.com", "start", "--config", str(directory)]) == 0
    )
    said = capsys.readouterr().out
    keys = load_keys(str(directory / "keys"), "gslb.example.com.")
    assert [k.state for k in keys] == ["active", "active"]  # no third key was made
    assert f"new key {keys[1].tag} (ECDSAP256SHA256, active)" in said


def test_keys_made_within_one_second_load_oldest_first(tmp_path: Path) -> None:
    # Key tags are random: with whole-second creation times, keys made in the same
    # second came back in tag order (a rollover then activated the wrong one).
    ticks = iter([1_000_000.1 + i / 100 for i in range(8)])
    made = [
        generate_key(str(tmp_path), "gslb.example.com.", ECDSAP256SHA256, clock=lambda: next(ticks))
        for _ in range(8)
    ]
    assert [k.tag for k in load_keys(str(tmp_path), "gslb.example.com.")] == [k.tag for k in made]
