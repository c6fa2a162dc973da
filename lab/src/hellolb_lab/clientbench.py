"""What the client's logging and bookkeeping cost: ``python -m hellolb_lab.clientbench``.

Runs one real server process with zero work time on loopback, then alternates
two loops against it, each sending rounds of concurrent calls:

- ``bare``: a plain grpc.aio stub in a loop, nothing else;
- ``client``: this project's Runner, with tenacity, statistics and one JSON log line
  per answer (written to /dev/null, fully rendered).

It prints throughput and p50/p99 latency of each, and the client's cost as a
ratio against the bare loop measured in the same run. It is a benchmark, not a test. It lives in
the lab because it starts a server: the lab is the package that depends on both services.
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
from dataclasses import dataclass

import grpc
import structlog
from hello_client.app import wait_for_server
from hello_client.channel import create_channel
from hello_client.config import ClientConfig
from hello_client.retry import RpcRetry
from hello_client.runner import Runner
from hello_client.stats import Stats, percentile
from hellolb.logsetup import configure_logging
from hellolb.v1 import hello_pb2, hello_pb2_grpc


@dataclass(frozen=True)
class Result:
    calls: int
    seconds: float
    latencies: list[float]

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
    runner = Runner(
        config,
        hello_pb2_grpc.HelloServiceStub(channel),
        stats,
        RpcRetry(config.rpc_retries),
        structlog.get_logger("bench"),
        clock=time.perf_counter,
    )
    started = time.perf_counter()
    await runner.run(asyncio.Event())
    seconds = time.perf_counter() - started
    if stats.errors_total:
        raise RuntimeError(f"the client saw errors: {dict(stats.errors_total)}")
    return Result(len(stats.all_latencies), seconds, stats.all_latencies)


async def measure(port: int, rounds: int, repeats: int, concurrency: int) -> dict[str, list]:
    config = ClientConfig.from_env(
        {
            "SERVER_ADDRESS": f"127.0.0.1:{port}",
            "CLIENT_ID": "bench",
            "CONCURRENCY": str(concurrency),
            "MAX_ROUNDS": str(rounds),
            "SUMMARY_INTERVAL": "1s",
        }
    )
    results: dict[str, list[Result]] = {"bare": [], "client": []}
    async with create_channel(config) as channel:
        await wait_for_server(channel, config, structlog.get_logger("bench"))
        await bare_loop(channel, max(1, rounds // 5), concurrency)  # warm-up
        for _ in range(repeats):
            results["bare"].append(await bare_loop(channel, rounds, concurrency))
            results["client"].append(await client_loop(config, channel))
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

    port = free_port()
    env = {
        **os.environ,
        "BIND_ADDRESS": "127.0.0.1",
        "PORT": str(port),
        "WORK_TIME": "0",
        "LOG_LEVEL": "warning",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "hello_server"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        with open(os.devnull, "w") as devnull:
            configure_logging("info", "json", devnull)
            results = asyncio.run(measure(port, args.rounds, args.repeats, args.concurrency))
    finally:
        server.terminate()
        server.wait(15)

    print(
        f"{args.repeats} x {args.rounds} rounds of {args.concurrency} concurrent calls, "
        "zero server work, 127.0.0.1, one server process"
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


if __name__ == "__main__":
    main()
