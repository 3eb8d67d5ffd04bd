"""DNS Cookies (RFC 7873/9018) and the server's identity (NSID, CH TXT): the pure cookie
code against the RFCs' test vectors, then real `gslb serve`s over UDP and TCP."""

from __future__ import annotations

import ipaddress
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from gslb.dns.cookies import ServerCookies, parse_secrets, well_formed
from gslb.siphash import siphash24
from tests.conftest import Served, copy_sample, start_serve

SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"  # RFC 9018 Appendix A
OLD_SECRET, NEW_SECRET = "dd3bdf9344b678b185a6f5cb60fca715", "445536bcd2513298075a5d379663c962"


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def test_siphash_reference_vectors() -> None:
    key = bytes(range(16))  # the SipHash paper's Appendix A
    assert siphash24(key, b"") == (0x726FDB47DD0E0E31).to_bytes(8, "little")
    assert siphash24(key, bytes(range(15))) == (0xA129CA6149BE45E5).to_bytes(8, "little")
    assert siphash24(key, bytes(range(63))) == (0x958A324CEB064572).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("secret", "client", "address", "stamp", "expected"),
    [
        (
            SECRET,
            "2464c4abcf10c957",
            "198.51.100.100",
            1559731985,
            "010000005cf79f111f8130c3eee29480",
        ),
        (
            SECRET,
            "2464c4abcf10c957",
            "198.51.100.100",
            1559734385,
            "010000005cf7a871d4a564a1442aca77",
        ),
        (
            SECRET,
            "fc93fc62807ddb86",
            "203.0.113.203",
            1559734700,
            "010000005cf7a9acf73a7810aca2381e",
        ),
        (
            NEW_SECRET,
            "22681ab97d52c298",
            "2001:db8:220:1:59de:d0f4:8769:82b8",
            1559741961,
            "010000005cf7c609a6bb79d16625507a",
        ),
    ],
)
def test_server_cookies_are_rfc_9018s(
    secret: str, client: str, address: str, stamp: int, expected: str
) -> None:
    cookies = ServerCookies(parse_secrets(secret))
    assert cookies.make(bytes.fromhex(client), packed(address), stamp).hex() == expected


def test_checking_cookies_reserved_bytes_window_and_rollover() -> None:
    # A.3: the client's cookie came with reserved bytes set (they are hashed as sent),
    # stamped 1h52m before the query: out of date, so a fresh one is made.
    option = bytes.fromhex("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5")
    client, server = option[:8], option[8:]
    address = packed("203.0.113.203")
    stamp = int.from_bytes(server[4:8], "big")
    cookies = ServerCookies(parse_secrets(SECRET), clock=lambda: 1559734700)
    assert cookies.valid(client, server, address, stamp + 10)
    assert not cookies.valid(client, server, packed("203.0.113.204"), stamp + 10)
    assert cookies.valid(client, server, address, stamp + 3600)
    assert not cookies.valid(client, server, address, stamp + 3601)
    assert cookies.valid(client, server, address, stamp - 300)
    assert not cookies.valid(client, server, address, stamp - 301)
    assert cookies.answer(option, address) == (
        client + bytes.fromhex("010000005cf7a9acf73a7810aca2381e"),  # A.3's reply
        False,
    )
    # Between 30 minutes and an hour old: valid, and renewed in the reply.
    later = ServerCookies(parse_secrets(SECRET), clock=lambda: stamp + 2000)
    data, trusted = later.answer(option, address)
    assert trusted and data[:8] == client and data[8:] != server
    fresh = ServerCookies(parse_secrets(SECRET), clock=lambda: stamp + 60)
    assert fresh.answer(option, address) == (option, True)  # young: echoed as it came
    # A.4: a cookie made under the old secret is accepted while it is listed second.
    old_cookie = bytes.fromhex("22681ab97d52c298010000005cf7c57926556bd0934c72f8")
    v6 = packed("2001:db8:220:1:59de:d0f4:8769:82b8")
    rolled = ServerCookies(parse_secrets(f"{NEW_SECRET},{OLD_SECRET}"), clock=lambda: 1559741961)
    assert rolled.answer(old_cookie, v6) == (
        bytes.fromhex("22681ab97d52c298010000005cf7c609a6bb79d16625507a"),  # A.4's reply
        True,
    )
    only_new = ServerCookies(parse_secrets(NEW_SECRET), clock=lambda: 1559741961)
    assert only_new.answer(old_cookie, v6)[1] is False


def test_a_burst_of_new_clients_keeps_the_hot_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo evicts one verdict at a time (CLOCK): clients that keep coming back are
    never hashed again, however many one-off clients pass (a clear-all memo rehashes them)."""
    hashed = []

    def counting(secret: bytes, message: bytes) -> bytes:
        hashed.append(message)
        return siphash24(secret, message)

    now = 1_700_000_000
    cookies = ServerCookies(parse_secrets(SECRET), clock=lambda: now, memo_size=100)
    monkeypatch.setattr("gslb.dns.cookies.siphash24", counting)

    def option_of(i: int) -> tuple[bytes, bytes]:
        client, address = i.to_bytes(8, "big"), packed(f"198.51.{i // 256}.{i % 256}")
        return client + cookies.make(client, address, now), address

    hot = [option_of(i) for i in range(10)]
    for option, address in hot:
        assert cookies.answer(option, address) == (option, True)
    hashed.clear()
    for i in range(10, 2010):
        option, address = option_of(i)
        assert cookies.answer(option, address) == (option, True)
        assert cookies.memo_sizes() <= (100, 100)
        if i % 20 == 0:
            for option, address in hot:
                assert cookies.answer(option, address) == (option, True)
    assert len(hashed) == 2 * 2000  # each new client's cookie made once, checked once


def test_secrets_and_lengths_are_checked() -> None:
    for bad in ("", "abc", SECRET + "00", "zz" * 16, f"{SECRET},"):
        with pytest.raises(ValueError):
            parse_secrets(bad)
    assert [n for n in range(0, 45) if well_formed(bytes(n))] == [8, *range(16, 41)]


# --- real servers -----------------------------------------------------------------------


def configure(directory: Path, *, rate: bool = True) -> Path:
    zones = copy_sample(directory)
    settings = zones / "gslb.yaml"
    text = settings.read_text()
    sample_rrl = (
        "rate_limit: {responses_per_second: 20, window: 5s, slip: 2, exempt: [127.0.0.0/8]}"
    )
    assert sample_rrl in text and "cookies: {secret_env: GSLB_DNS_COOKIE_SECRET}" in text
    if rate:  # loopback not exempt, and a small budget: the flood below is limited
        text = text.replace(
            sample_rrl, "rate_limit: {responses_per_second: 5, window: 1s, slip: 0, exempt: []}"
        )
    settings.write_text(text)
    return zones


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_serve(
        configure(tmp_path_factory.mktemp("cookies")), env={"GSLB_DNS_COOKIE_SECRET": SECRET}
    )
    yield server
    server.stop()


def cookie_query(name: str, option: bytes | None, *, nsid: bool = False) -> dns.message.Message:
    options: list[dns.edns.Option] = []
    if option is not None:
        options.append(dns.edns.GenericOption(dns.edns.COOKIE, option))
    if nsid:
        options.append(dns.edns.GenericOption(dns.edns.NSID, b""))
    return dns.message.make_query(name, "A", use_edns=0, options=options)


def option_of(reply: dns.message.Message, code: int) -> bytes | None:
    for option in reply.options:
        if option.otype == code:
            return option.to_wire()
    return None


def ask(
    served: Served, query: dns.message.Message, source: str = "127.0.0.1"
) -> dns.message.Message:
    return dns.query.udp(query, "127.0.0.1", port=served.dns_port, timeout=2, source=source)


def test_a_client_cookie_gets_a_server_cookie_that_verifies(served: Served) -> None:
    client = bytes.fromhex("2464c4abcf10c957")
    reply = ask(served, cookie_query("www.gslb.example.com", client))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    option = option_of(reply, dns.edns.COOKIE)
    assert option is not None and len(option) == 24 and option[:8] == client
    server = option[8:]
    checker = ServerCookies(parse_secrets(SECRET))
    stamp = int.from_bytes(server[4:8], "big")
    assert checker.valid(client, server, packed("127.0.0.1"), stamp)
    # Sent back (younger than half an hour): the same cookie comes back, over TCP too.
    again = ask(served, cookie_query("www.gslb.example.com", option))
    assert option_of(again, dns.edns.COOKIE) == option
    tcp = dns.query.tcp(
        cookie_query("www.gslb.example.com", option), "127.0.0.1", port=served.dns_port, timeout=2
    )
    assert option_of(tcp, dns.edns.COOKIE) == option
    # From another address the cookie is not ours: answered, with a fresh one for it.
    other = ask(served, cookie_query("www.gslb.example.com", option), source="127.0.0.9")
    fresh = option_of(other, dns.edns.COOKIE)
    assert other.answer and fresh is not None and fresh[:8] == client and fresh != option
    assert checker.valid(
        client, fresh[8:], packed("127.0.0.9"), int.from_bytes(fresh[12:16], "big")
    )


def test_the_answer_is_the_one_without_a_cookie(served: Served) -> None:
    # ECS, a cookie and NSID together: the ECS echo and the steered answer are what the
    # same query without the cookie gets.
    ecs = dns.edns.ECSOption("198.51.100.0", 24)
    plain = dns.message.make_query("www.gslb.example.com", "A", use_edns=0, options=[ecs])
    with_cookie = dns.message.make_query(
        "www.gslb.example.com",
        "A",
        use_edns=0,
        options=[ecs, dns.edns.GenericOption(dns.edns.COOKIE, b"\x01" * 8)],
    )
    a, b = ask(served, plain), ask(served, with_cookie)
    assert a.answer == b.answer
    assert [o for o in a.options if o.otype == dns.edns.ECS] == [
        o for o in b.options if o.otype == dns.edns.ECS
    ]
    assert option_of(a, dns.edns.COOKIE) is None and option_of(b, dns.edns.COOKIE) is not None


@pytest.mark.parametrize("length", [1, 7, 9, 15, 41])
def test_a_cookie_of_a_malformed_length_gets_formerr(served: Served, length: int) -> None:
    # (From a block of its own: the errors account of 127.0.0.0/24 is small here.)
    reply = ask(served, cookie_query("www.gslb.example.com", bytes(length)), f"127.1.{length}.1")
    assert reply.rcode() == dns.rcode.FORMERR
    assert reply.question and reply.edns == 0  # the question and OPT are echoed


def test_two_cookie_options_get_formerr(served: Served) -> None:
    query = dns.message.make_query(
        "www.gslb.example.com",
        "A",
        use_edns=0,
        options=[dns.edns.GenericOption(dns.edns.COOKIE, bytes(8))] * 2,
    )
    assert ask(served, query, "127.1.100.1").rcode() == dns.rcode.FORMERR


def burst(served: Served, source: str, option: bytes | None, count: int) -> int:
    """Answers to `count` queries sent at once from `source`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    answered = 0
    try:
        for i in range(count):
            query = cookie_query("api.gslb.example.com", option)
            query.id = i
            sock.sendto(query.to_wire(), ("127.0.0.1", served.dns_port))
        while select.select([sock], [], [], 1.0)[0]:
            answered += bool(dns.message.from_wire(sock.recv(65535)).answer)
    finally:
        sock.close()
    return answered


def test_a_valid_server_cookie_is_never_rate_limited(served: Served) -> None:
    client = bytes.fromhex("0102030405060708")
    first = ask(served, cookie_query("api.gslb.example.com", client), source="127.0.2.1")
    option = option_of(first, dns.edns.COOKIE)
    assert option is not None
    assert burst(served, "127.0.2.1", option, 100) == 100
    # The same flood with only a client cookie, or a forged server cookie, is limited.
    assert burst(served, "127.0.3.1", client, 100) <= 10
    forged = option[:-1] + bytes((option[-1] ^ 1,))
    assert burst(served, "127.0.4.1", forged, 100) <= 10


def test_nsid_and_chaos_identity(served: Served) -> None:
    reply = ask(served, cookie_query("www.gslb.example.com", None, nsid=True))
    assert option_of(reply, dns.edns.NSID) == b"ns1.gslb.example.com"
    assert option_of(ask(served, cookie_query("www.gslb.example.com", None)), dns.edns.NSID) is None
    for name in ("id.server", "hostname.bind"):
        query = dns.message.make_query(name, "TXT", rdclass=dns.rdataclass.CH)
        chaos = ask(served, query)
        assert chaos.flags & dns.flags.AA and chaos.rcode() == dns.rcode.NOERROR
        assert [rr.to_text() for rr in chaos.answer[0]] == ['"ns1.gslb.example.com"']
        assert chaos.answer[0].rdclass == dns.rdataclass.CH
        nodata = ask(served, dns.message.make_query(name, "A", rdclass=dns.rdataclass.CH))
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    other = ask(served, dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH))
    assert other.rcode() == dns.rcode.REFUSED


def test_without_identity_or_cookies_neither_is_answered(tmp_path: Path) -> None:
    zones = copy_sample(tmp_path)
    settings = zones / "gslb.yaml"
    text = settings.read_text()
    kept = [
        line for line in text.splitlines() if not line.strip().startswith(("cookies:", "identity:"))
    ]
    settings.write_text("\n".join(kept) + "\n")
    server = start_serve(zones)
    try:
        reply = ask(server, cookie_query("www.gslb.example.com", bytes(8), nsid=True))
        assert reply.answer and not reply.options
        chaos = ask(server, dns.message.make_query("id.server", "TXT", rdclass=dns.rdataclass.CH))
        assert chaos.rcode() == dns.rcode.REFUSED
        # A malformed cookie is still FORMERR (RFC 7873 §5.2.2).
        assert (
            ask(server, cookie_query("www.gslb.example.com", bytes(9))).rcode() == dns.rcode.FORMERR
        )
    finally:
        server.stop()


@pytest.mark.parametrize("workers", [1, 2])
def test_nodes_with_one_secret_accept_each_others_cookies(tmp_path: Path, workers: int) -> None:
    zones = configure(tmp_path, rate=False)
    env = {"GSLB_DNS_COOKIE_SECRET": f"{NEW_SECRET},{SECRET}"}
    a = start_serve(zones, env=env)
    b = start_serve(zones, "--workers", str(workers), env=env)
    c = start_serve(zones, env={"GSLB_DNS_COOKIE_SECRET": OLD_SECRET})
    try:
        option = option_of(
            ask(a, cookie_query("www.gslb.example.com", b"\x07" * 8)), dns.edns.COOKIE
        )
        assert option is not None
        # b (every worker: each query from a new source port) echoes it: valid there too.
        for _ in range(20):
            assert (
                option_of(ask(b, cookie_query("www.gslb.example.com", option)), dns.edns.COOKIE)
                == option
            )
        # c has another secret: the cookie is not valid there, so c makes its own.
        assert (
            option_of(ask(c, cookie_query("www.gslb.example.com", option)), dns.edns.COOKIE)
            != option
        )
    finally:
        for server in (a, b, c):
            server.stop()


def test_a_bad_secret_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="did not start"):
        start_serve(configure(tmp_path), env={"GSLB_DNS_COOKIE_SECRET": "not-hex"})
