"""The lab DNS server, asked with real UDP and TCP queries."""

import sys

import pytest
from dnslib import QTYPE, RCODE, DNSRecord
from hellolb_lab import dns, procs
from hellolb_lab.errors import LabError
from hellolb_lab.procs import free_port

HOST = "127.0.91.1"


@pytest.fixture
def server(tmp_path):
    zone = dns.Zone(tmp_path / "zone.json")
    zone.publish("server.lab", ["127.0.91.11", "127.0.91.12"])
    port = free_port(HOST, udp=True)
    log: list[dict] = []
    servers = dns.serve(HOST, port, zone, ttl=1, log=log.append)
    yield zone, port, log
    for s in servers:
        s.stop()


def test_a_records_change_when_published(server):
    zone, port, log = server
    assert dns.addresses(HOST, port, "server.lab") == ["127.0.91.11", "127.0.91.12"]
    zone.publish("server.lab", ["127.0.91.11", "127.0.91.12", "127.0.91.13"])
    assert dns.addresses(HOST, port, "Server.Lab.") == ["127.0.91.11", "127.0.91.12", "127.0.91.13"]
    reply = dns.query(HOST, port, "server.lab")
    assert {rr.ttl for rr in reply.rr} == {1}
    assert log[-1]["event"] == "dns.query"
    assert log[-1]["name"] == "server.lab"


def test_aaaa_is_empty_noerror_and_unknown_is_nxdomain(server):
    _, port, _ = server
    reply = dns.query(HOST, port, "server.lab", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR
    assert reply.rr == []
    assert dns.query(HOST, port, "other.lab").header.rcode == RCODE.NXDOMAIN


def test_tcp_queries_are_answered(server):
    _, port, _ = server
    packet = DNSRecord.question("server.lab", "A").send(HOST, port, tcp=True, timeout=1)
    reply = DNSRecord.parse(packet)
    assert sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A) == [
        "127.0.91.11",
        "127.0.91.12",
    ]


def test_wait_answers_times_out_with_what_it_got(server):
    _, port, _ = server
    with pytest.raises(LabError, match=r"answer .*127\.0\.91\.99.*127\.0\.91\.11"):
        dns.wait_answers(HOST, port, "server.lab", ["127.0.91.99"], timeout=0.3)


def test_dns_process_answers_and_logs_queries(tmp_path):
    port = free_port(HOST, udp=True)
    zone = dns.Zone(tmp_path / "zone.json")
    zone.publish("proxy.lab", ["127.0.91.21"])
    with procs.Supervisor(tmp_path / "logs") as sup:
        proc = sup.start(
            "dns",
            [
                sys.executable,
                "-m",
                "hellolb_lab.dns",
                "--listen",
                f"{HOST}:{port}",
                "--zone",
                str(zone.path),
            ],
        )
        proc.wait_event(lambda e: e["event"] == dns.STARTED, timeout=10)
        dns.wait_answers(HOST, port, "proxy.lab", ["127.0.91.21"], timeout=5)
        zone.publish("proxy.lab", ["127.0.91.21", "127.0.91.22"])
        dns.wait_answers(HOST, port, "proxy.lab", ["127.0.91.21", "127.0.91.22"], timeout=5)
        proc.wait_event(lambda e: e.get("answers") == ["127.0.91.21", "127.0.91.22"], timeout=5)
        # the port is taken now, and the lab says so before starting a second one
        with pytest.raises(LabError, match="not available"):
            procs.check_free(HOST, port, udp=True)
        assert sup.stop(proc) == 0
    assert not proc.running()
