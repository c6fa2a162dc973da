"""What the client's logging and bookkeeping cost: ``python -m hellolb_lab.clientbench``.

Runs two real server processes with zero work time on loopback, one with its default
settings and one with ``ORCA_REPORTS=false``, then measures these loops, each sending rounds
of concurrent calls:

- ``bare``: a plain grpc.aio stub in a loop, nothing else, against the default server;
- ``client``: this project's rounds loop, with its retry layer, statistics and one JSON log
  line per answer (written to /dev/null, fully rendered), against the default server;
- ``-log``, ``-stats``, ``-retry``: the same client with one of those three taken out
  (``LOG_RESPONSES=false``; statistics that count nothing; calls made without the retry
  layer), so that each one's cost is the difference it makes, measured one at a time;
- ``no-orca``: the bare loop against the server that attaches no ORCA load report.

A repeat runs every loop once, in an order that turns from one repeat to the next, and each
loop is compared with the bare loop of its own repeat: a shared machine's load drifts over
seconds, and two loops measured side by side see nearly the same machine. Each figure is the
median over the repeats. Two figures per loop: the throughput, and the client process's CPU
time per call (all of its threads, from ``time.process_time``), the steadier one when other
work shares the cores. The cost of the ORCA report is the bare loop's throughput with and
without it, and the server's CPU time per call with and without it, read from /proc.

It is a benchmark, not a test. It lives in the lab because it starts servers: the lab is the
package that depends on both services.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

import grpc
import structlog
from hello_client.app import wait_for_server
from hello_client.caller import Caller
from hello_client.channel import create_channel
from hello_client.config import ClientConfig
from hello_client.retry import RpcRetry
from hello_client.rounds import RoundLoop
from hello_client.stats import Stats, percentile
from hellolb.logsetup import bind_context, configure_logging
from hellolb.v1 import hello_pb2, hello_pb2_grpc

from hellolb_lab.procs import free_port

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    calls: int
    seconds: float
    cpu_seconds: float
    latencies: list[float] = field(repr=False)
    server_cpu: float = 0.0

    @property
    def throughput(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_per_call(self) -> float:
        return self.cpu_seconds / self.calls


async def timed(loop: Callable[[], Awaitable[list[float]]]) -> Result:
    """Run ``loop`` and time it, on the wall clock and in this process's CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    latencies = await loop()
    return Result(len(latencies), time.perf_counter() - wall, time.process_time() - cpu, latencies)


async def bare_loop(channel: grpc.aio.Channel, rounds: int, concurrency: int) -> list[float]:
    stub = hello_pb2_grpc.HelloServiceStub(channel)
    latencies: list[float] = []

    async def one(counter: int) -> None:
        started = time.perf_counter()
        await stub.Hello(hello_pb2.HelloRequest(client_id="bare", counter=counter), timeout=5)
        latencies.append(time.perf_counter() - started)

    for r in range(rounds):
        await asyncio.gather(*(one(r * concurrency + i) for i in range(concurrency)))
    return latencies


class TimedStats(Stats):
    """Stats that also keep every latency, for the benchmark's own percentiles."""

    def __init__(self) -> None:
        super().__init__(clock=time.perf_counter)
        self.all_latencies: list[float] = []

    def answer(self, server_id: str, latency_seconds: float) -> None:
        super().answer(server_id, latency_seconds)
        self.all_latencies.append(latency_seconds)


class NoStats(TimedStats):
    """Keeps only the benchmark's latencies, as the bare loop does: the client minus its stats."""

    def answer(self, server_id: str, latency_seconds: float) -> None:
        self.all_latencies.append(latency_seconds)


class NoRetry(RpcRetry):
    """Calls once, as the bare loop does: the client minus its retry layer."""

    async def __call__(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await fn()


@dataclass(frozen=True)
class Variant:
    """The client with some of its parts taken out."""

    log_responses: bool = True
    stats: type[TimedStats] = TimedStats
    retry: type[RpcRetry] = RpcRetry


async def client_loop(
    config: ClientConfig, channel: grpc.aio.Channel, variant: Variant
) -> list[float]:
    config = replace(config, log_responses=variant.log_responses)
    stats = variant.stats()
    caller = Caller(
        config,
        hello_pb2_grpc.HelloServiceStub(channel),
        stats,
        structlog.get_logger("bench"),
        variant.retry(config.rpc_retries),
        clock=time.perf_counter,
    )
    await RoundLoop(caller).run(asyncio.Event())
    if stats.errors_total:
        raise RuntimeError(f"the client saw errors: {dict(stats.errors_total)}")
    return stats.all_latencies


#: The client's loops, by name, and what each takes out; "bare" and "no-orca" are the bare loop.
CLIENTS = {
    "client": Variant(),
    "-log": Variant(log_responses=False),
    "-stats": Variant(stats=NoStats),
    "-retry": Variant(retry=NoRetry),
}
#: What each part's cost is measured against: the full client, and the client without it.
PARTS = {
    "-log": "JSON log line per answer",
    "-stats": "statistics",
    "-retry": "retry layer (first try)",
}
LOOPS = ("bare", *CLIENTS, "no-orca")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
) -> list[dict[str, Result]]:
    """``repeats`` dicts, one per repeat: each loop's result, the loops run in turning order."""
    config = bench_config(ports[0], rounds, concurrency)
    plain = bench_config(ports[1], rounds, concurrency)
    log = structlog.get_logger("bench")
    async with create_channel(config) as channel, create_channel(plain) as no_orca:
        loops: dict[str, Callable[[], Awaitable[list[float]]]] = {
            "bare": lambda: bare_loop(channel, rounds, concurrency),
            "no-orca": lambda: bare_loop(no_orca, rounds, concurrency),
        }
        for name, variant in CLIENTS.items():
            loops[name] = partial(client_loop, config, channel, variant)
        server = {"bare": pids[0], "no-orca": pids[1]}
        for each in (channel, no_orca):
            await wait_for_server(each, config, log)
            await bare_loop(each, max(1, rounds // 2), concurrency)  # warm-up
        await client_loop(config, channel, Variant())  # warm-up
        results: list[dict[str, Result]] = []
        for n in range(repeats):
            results.append({})
            for name in LOOPS[n % len(LOOPS) :] + LOOPS[: n % len(LOOPS)]:
                pid = server.get(name)
                before = cpu_seconds(pid) if pid else 0.0
                result = await timed(loops[name])
                if pid:
                    result = replace(result, server_cpu=cpu_seconds(pid) - before)
                results[-1][name] = result
    return results


def start_servers(ports: tuple[int, int]) -> list[subprocess.Popen]:
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
    return servers


def report(results: list[dict[str, Result]], rounds: int, concurrency: int) -> None:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    def speed(name: str, base: str = "bare") -> float:
        """``name``'s throughput over ``base``'s, repeat by repeat, median."""
        return median([r[name].throughput / r[base].throughput for r in results])

    def cpu(name: str, base: str = "bare") -> float:
        """``base``'s CPU time per call over ``name``'s (below 1: ``name`` costs more)."""
        return median([r[base].cpu_per_call / r[name].cpu_per_call for r in results])

    print(
        f"{len(results)} repeats of {rounds} rounds of {concurrency} concurrent calls per loop, "
        "zero server work, 127.0.0.1, loops in turning order"
    )
    print(
        f"{'loop':<9}{'calls/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/call':>13}"
        f"{'x bare':>8}{'x bare CPU':>12}"
    )
    for name in LOOPS:
        latencies = sorted(x for r in results for x in r[name].latencies)
        p50, p99 = (1000 * (percentile(latencies, f) or 0.0) for f in (0.5, 0.99))
        print(
            f"{name:<9}{median([r[name].throughput for r in results]):>9.0f}{p50:>8.2f}"
            f"{p99:>8.2f}{1e6 * median([r[name].cpu_per_call for r in results]):>13.0f}"
            f"{speed(name):>8.3f}{cpu(name):>12.3f}"
        )
    print("where the client's time goes, each part taken out alone (client with it / without):")
    for name, part in PARTS.items():
        extra = median([r["client"].cpu_per_call - r[name].cpu_per_call for r in results])
        print(
            f"  {part:<26} throughput x{speed('client', name):.3f}, "
            f"CPU x{cpu('client', name):.3f} ({1e6 * extra:+.0f} us per call)"
        )
    print(
        f"client/bare throughput ratio: {speed('client'):.2f} "
        f"(CPU: {cpu('client'):.2f}; 1.00 = the client's logging and bookkeeping cost nothing)"
    )
    print(
        f"ORCA on/off throughput ratio: {speed('bare', 'no-orca'):.2f} "
        "(1.00 = the per-call load report costs nothing)"
    )
    server = {
        name: 1e6 * sum(r[name].server_cpu for r in results) / sum(r[name].calls for r in results)
        for name in ("bare", "no-orca")
    }
    print(
        f"server CPU per call: {server['bare']:.0f} us with ORCA, {server['no-orca']:.0f} us "
        f"without, ratio {server['bare'] / server['no-orca']:.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40, help="rounds per loop and repeat")
    parser.add_argument("--repeats", type=int, default=30, help="runs of every loop")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args(argv)

    ports = (free_port(), free_port())
    servers = start_servers(ports)
    try:
        with open(os.devnull, "w") as devnull:
            configure_logging("info", "json", devnull)
            # As the client binds them at start: every line carries them.
            bind_context(scenario="bench", client_id="bench")
            pids = (servers[0].pid, servers[1].pid)
            results = asyncio.run(measure(ports, pids, args.rounds, args.repeats, args.concurrency))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(15)
    report(results, args.rounds, args.concurrency)


if __name__ == "__main__":
    main()
