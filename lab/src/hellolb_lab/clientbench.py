"""What the client's logging and bookkeeping cost: ``python -m hellolb_lab.clientbench``.

Runs two real server processes with zero work time on loopback, one with its default
settings and one with ``ORCA_REPORTS=false``, then alternates three loops, each sending
rounds of concurrent calls:

- ``bare``: a plain grpc.aio stub in a loop, nothing else, against the default server;
- ``client``: this project's Runner, with tenacity, statistics and one JSON log line
  per answer (written to /dev/null, fully rendered), against the default server;
- ``no-orca``: the bare loop against the server that attaches no ORCA load report.

It prints throughput and p50/p99 latency of each, the client's cost as a ratio against the
bare loop, and the cost of the ORCA report: the bare loop's throughput with and without it
(building, sending and grpc's client parsing it), and the server's CPU time per call with and
without it, read from /proc (the steadier figure on a shared machine), all from the same run.
It is a benchmark, not a test. It lives in the lab because it starts servers: the lab is the
package that depends on both services.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import structlog
from hello_client.app import wait_for_server
from hello_client.caller import Caller
from hello_client.channel import create_channel
from hello_client.config import ClientConfig
from hello_client.rounds import RoundLoop
from hello_client.stats import Stats, percentile
from hellolb.logsetup import configure_logging
from hellolb.v1 import hello_pb2, hello_pb2_grpc


@dataclass(frozen=True)
class Result:
    calls: int
    seconds: float
    latencies: list[float]
    server_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    def p(self, fraction: float) -> float:
        return (percentile(sorted(self.latencies), fraction) or 0.0) * 1000


async def bare_loop(channel: grpc.aio.Channel, rounds: int, concurrency: int) -> Result:
    stub = hello_pb2_grpc.HelloServiceStub(channel)
    latencies: list[float] = []

    async def one(counter: int) -> None:
        started = time.perf_counter()
        await stub.Hello(hello_pb2.HelloRequest(client_id="bare", counter=counter), timeout=5)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for r in range(rounds):
        await asyncio.gather(*(one(r * concurrency + i) for i in range(concurrency)))
    return Result(rounds * concurrency, time.perf_counter() - started, latencies)


class TimedStats(Stats):
    """Stats that also keep every latency, for the benchmark's own percentiles."""

    def __init__(self) -> None:
        super().__init__(clock=time.perf_counter)
        self.all_latencies: list[float] = []

    def answer(self, server_id: str, latency_seconds: float) -> None:
        super().answer(server_id, latency_seconds)
        self.all_latencies.append(latency_seconds)


async def client_loop(config: ClientConfig, channel: grpc.aio.Channel) -> Result:
    stats = TimedStats()
    caller = Caller(
        config,
        hello_pb2_grpc.HelloServiceStub(channel),
        stats,
        structlog.get_logger("bench"),
        clock=time.perf_counter,
    )
    started = time.perf_counter()
    await RoundLoop(caller).run(asyncio.Event())
    seconds = time.perf_counter() - started
    if stats.errors_total:
        raise RuntimeError(f"the client saw errors: {dict(stats.errors_total)}")
    return Result(len(stats.all_latencies), seconds, stats.all_latencies)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_cpu(pid: int, loop: Awaitable[Result]) -> Result:
    """``loop``'s result, with the CPU time the server it calls spent meanwhile."""
    before = cpu_seconds(pid)
    result = await loop
    return replace(result, server_cpu=cpu_seconds(pid) - before)


def bench_config(port: int, rounds: int, concurrency: int) -> ClientConfig:
    return ClientConfig.from_env(
        {
            "SERVER_ADDRESS": f"127.0.0.1:{port}",
            "CLIENT_ID": "bench",
            "CONCURRENCY": str(concurrency),
            "MAX_ROUNDS": str(rounds),
            "SUMMARY_INTERVAL": "1s",
        }
    )


async def measure(
    ports: tuple[int, int], pids: tuple[int, int], rounds: int, repeats: int, concurrency: int
) -> dict[str, list]:
    config = bench_config(ports[0], rounds, concurrency)
    plain = bench_config(ports[1], rounds, concurrency)
    results: dict[str, list[Result]] = {"bare": [], "client": [], "no-orca": []}
    log = structlog.get_logger("bench")
    async with create_channel(config) as channel, create_channel(plain) as no_orca:
        for each in (channel, no_orca):
            await wait_for_server(each, config, log)
            await bare_loop(each, max(1, rounds // 5), concurrency)  # warm-up
        for _ in range(repeats):
            results["bare"].append(
                await server_cpu(pids[0], bare_loop(channel, rounds, concurrency))
            )
            results["client"].append(await client_loop(config, channel))
            results["no-orca"].append(
                await server_cpu(pids[1], bare_loop(no_orca, rounds, concurrency))
            )
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300, help="rounds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per loop")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)

    ports = (free_port(), free_port())
    servers = []
    for port, orca in zip(ports, ("true", "false"), strict=True):
        env = {
            **os.environ,
            "BIND_ADDRESS": "127.0.0.1",
            "PORT": str(port),
            "WORK_TIME": "0",
            "LOG_LEVEL": "warning",
            "ORCA_REPORTS": orca,
        }
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "hello_server"], env=env, stdout=subprocess.DEVNULL
            )
        )
    try:
        with open(os.devnull, "w") as devnull:
            configure_logging("info", "json", devnull)
            pids = (servers[0].pid, servers[1].pid)
            results = asyncio.run(measure(ports, pids, args.rounds, args.repeats, args.concurrency))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(15)

    print(
        f"{args.repeats} x {args.rounds} rounds of {args.concurrency} concurrent calls, "
        "zero server work, 127.0.0.1, one server process per loop target"
    )
    print(f"{'loop':<8}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    medians = {}
    for name, runs in results.items():
        pooled = Result(0, 1.0, [latency for run in runs for latency in run.latencies])
        medians[name] = statistics.median(r.throughput for r in runs)
        print(f"{name:<8}{medians[name]:>10.0f}{pooled.p(0.5):>9.2f}{pooled.p(0.99):>9.2f}")
    print(
        f"client/bare throughput ratio: {medians['client'] / medians['bare']:.2f} "
        "(1.00 = the client's logging and bookkeeping cost nothing)"
    )
    print(
        f"ORCA on/off throughput ratio: {medians['bare'] / medians['no-orca']:.2f} "
        "(1.00 = the per-call load report costs nothing)"
    )
    cpu = {
        name: 1e6 * sum(r.server_cpu for r in results[name]) / sum(r.calls for r in results[name])
        for name in ("bare", "no-orca")
    }
    print(
        f"server CPU per call: {cpu['bare']:.0f} us with ORCA, {cpu['no-orca']:.0f} us without, "
        f"ratio {cpu['bare'] / cpu['no-orca']:.2f}"
    )


if __name__ == "__main__":
    main()
