"""The stream mode: CONCURRENCY Ticks streams kept open, a new one opened when one ends.

Each of the CONCURRENCY slots holds one stream at a time. When its stream ends, the slot opens
another at once; when a stream ends before its first tick (no server reachable, a server that
refuses it or is closing its streams), the slot waits first, doubling the pause from 0.1 s to
2 s, so an outage never turns into a busy loop.

How an end counts, so that a rollout costs a reconnect and not an error:

- OK: the server ended the stream on purpose (a draining server does, with the trailer
  ``hellolb-stream-end: drain``). Never an error.
- UNAVAILABLE or CANCELLED after at least one tick: the server or the connection went away (a
  maximum connection age plus its grace, a crash, a stopping server). A reconnect, not an error.
- UNAVAILABLE or CANCELLED before the first tick: a failed open, retried like a failed call;
  RPC_RETRIES of them in a row count as one error.
- RESOURCE_EXHAUSTED: a limit, counted as limited and never as an error; the slot pauses as a
  limited call's caller does (the server's ``grpc-retry-pushback-ms``, else a backoff; see
  :class:`hello_client.caller.Pacing`) before it opens the next stream.
- Any other code: an error (INTERNAL from a proxy's route timeout, INVALID_ARGUMENT, ...), and
  DEADLINE_EXCEEDED when no tick came within RPC_TIMEOUT of the open, or within the tick
  interval plus RPC_TIMEOUT of the previous tick: the client then cancels the stream itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from hellolb import ticks
from hellolb.v1 import hello_pb2

from hello_client import events
from hello_client.caller import CLIENT_EXCEPTION, Backoff, Caller, failed_by
from hello_client.retry import LIMITED, RETRYABLE, pushback_in
from hello_client.streamstats import StreamStats
from hello_client.summaries import wait

RETRYABLE_CODES = frozenset(code.name for code in RETRYABLE)
LIMITED_CODE = LIMITED.name


@dataclass
class Stream:
    """One stream of a slot, as it goes."""

    slot: int
    number: int
    opened: float
    server_id: str | None = None
    # The server that refused the stream before any tick, when it named itself.
    refused_by: str | None = None
    ticks: int = 0
    code: str = "OK"
    details: str = ""
    end_reason: str = ""
    by_client: bool = False
    # The wait a limit asked for (``grpc-retry-pushback-ms``), in seconds.
    pushback: float | None = None


class StreamLoop:
    """Keeps ``concurrency`` streams open until stopped or MAX_DURATION is reached."""

    def __init__(self, caller: Caller, streams: StreamStats | None = None) -> None:
        self.caller = caller
        self.config = caller.config
        self.stats, self.log, self.clock = caller.stats, caller.log, caller.clock
        self.streams = streams or StreamStats()
        self._halt = asyncio.Event()

    def _fields(self, *, final: bool = False) -> dict[str, object]:
        fields = self.stats.summary(final=final)
        fields.update(self.streams.summary())
        return fields

    async def run(self, stopping: asyncio.Event) -> str:
        """Run every slot until ``stopping`` is set or MAX_DURATION; return why it ended.

        At the end each slot cancels its stream; those ends are logged (``by_client``) but not
        counted as stream ends.
        """
        config = self.config
        async with self.caller.summaries(stopping, self._fields):
            slots = [asyncio.create_task(self._slot(n)) for n in range(1, config.concurrency + 1)]
            if config.max_duration and not await wait(stopping, config.max_duration):
                reason = "max_duration"
            else:
                await stopping.wait()
                reason = "signal"
            self._halt.set()
            await asyncio.gather(*slots)
        return reason

    async def _slot(self, slot: int) -> None:
        backoff, pacing = Backoff(), self.caller.pacing()
        failed_opens = 0
        # When this slot's last stream that had ticks ended: a reconnect is timed from there.
        last_end: float | None = None
        while not self._halt.is_set():
            number = self.caller.next_number()
            try:
                stream = await self._stream(slot, number, last_end)
            except Exception:
                # A bug, not a gRPC error: logged with its traceback; the slot goes on.
                self.stats.error(CLIENT_EXCEPTION)
                self.log.exception(events.EXCEPTION, stream=number, slot=slot)
                await wait(self._halt, backoff.last)
                continue
            if stream.by_client:
                self._log_end(stream, error=False)
                return
            self.streams.ended(stream.code, self.clock() - stream.opened)
            limited = stream.code == LIMITED_CODE
            if stream.ticks:
                last_end, failed_opens = self.clock(), 0
                backoff.reset()
                error = stream.code not in RETRYABLE_CODES | {"OK", LIMITED_CODE}
            elif stream.code in RETRYABLE_CODES:
                failed_opens += 1
                error = failed_opens >= self.config.rpc_retries
                if error:
                    failed_opens = 0
            else:
                error = stream.code not in {"OK", LIMITED_CODE}
            if limited:
                self.stats.limited(stream.server_id or stream.refused_by)
                pacing.limited(stream.pushback)
            elif error:
                self.stats.error(stream.code, stream.server_id or stream.refused_by)
            self._log_end(stream, error, limited)
            limited_pause = pacing.take()
            if limited_pause:
                await wait(self._halt, limited_pause)
            elif not stream.ticks:
                await wait(self._halt, backoff.next())

    async def _stream(self, slot: int, number: int, last_end: float | None) -> Stream:
        """Open one stream and read it to its end, or until the client stops."""
        config = self.config
        request = hello_pb2.TicksRequest(
            client_id=config.client_id,
            stream=number,
            interval_ms=round(config.tick_interval * 1000),
        )
        stream = Stream(slot, number, self.clock())
        call = self.caller.stub.Ticks(request)
        halted = asyncio.ensure_future(self._halt.wait())
        try:
            while True:
                bound = config.rpc_timeout + (config.tick_interval if stream.ticks else 0.0)
                reading = asyncio.ensure_future(call.read())
                done, _ = await asyncio.wait(
                    {reading, halted}, timeout=bound, return_when=asyncio.FIRST_COMPLETED
                )
                if reading not in done:
                    reading.cancel()
                    call.cancel()
                    if halted in done:
                        stream.by_client, stream.code = True, "CANCELLED"
                    else:
                        stream.code = "DEADLINE_EXCEEDED"
                        stream.details = f"no tick within {bound:g}s"
                    return stream
                message = reading.result()
                if message is grpc.aio.EOF:
                    stream.code = (await call.code()).name
                    stream.details = await call.details() or ""
                    trailers = await call.trailing_metadata()
                    stream.end_reason = _end_reason(trailers)
                    stream.pushback = pushback_in(trailers)
                    return stream
                self._tick(stream, message, last_end)
        except grpc.aio.AioRpcError as error:
            stream.code, stream.details = error.code().name, error.details() or ""
            stream.end_reason = _end_reason(error.trailing_metadata())
            stream.pushback = pushback_in(error.trailing_metadata())
            stream.refused_by = failed_by(error)
            return stream
        finally:
            halted.cancel()
            # The streams the client closes itself at exit stay counted as open, so that the
            # final summary shows where they were when it stopped.
            if stream.server_id is not None and not stream.by_client:
                self.streams.closed(stream.server_id)

    def _tick(
        self, stream: Stream, message: hello_pb2.TicksResponse, last_end: float | None
    ) -> None:
        stream.ticks += 1
        if stream.server_id is None:
            now = self.clock()
            stream.server_id = message.server_id
            self.streams.opened(message.server_id)
            self.stats.latency(now - stream.opened)
            reconnect = None if last_end is None else now - last_end
            if reconnect is not None:
                self.streams.reconnected(reconnect)
            self.log.info(
                events.STREAM_OPENED,
                stream=stream.number,
                slot=stream.slot,
                server_id=message.server_id,
                server_pod_ip=message.server_pod_ip,
                server_node=message.server_node,
                peer=message.server_address,
                via=message.caller_address,
                open_ms=round((now - stream.opened) * 1000, 3),
                reconnect_seconds=None if reconnect is None else round(reconnect, 3),
            )
        self.stats.count(message.server_id)
        if self.config.log_responses:
            self.log.info(
                events.TICK,
                stream=stream.number,
                slot=stream.slot,
                tick=message.tick,
                server_id=message.server_id,
            )

    def _log_end(self, stream: Stream, error: bool, limited: bool = False) -> None:
        log = self.log.warning if error else self.log.info
        log(
            events.STREAM_ENDED,
            stream=stream.number,
            slot=stream.slot,
            server_id=stream.server_id or stream.refused_by,
            code=stream.code,
            details=stream.details,
            end_reason=stream.end_reason,
            lifetime_seconds=round(self.clock() - stream.opened, 3),
            ticks=stream.ticks,
            error=error,
            limited=limited,
            pushback_ms=None if stream.pushback is None else round(stream.pushback * 1000),
            by_client=stream.by_client,
        )


def _end_reason(metadata: grpc.aio.Metadata | None) -> str:
    """The reason a server gave for ending the stream itself, or ``""``."""
    if not metadata:
        return ""
    value = metadata.get(ticks.END_REASON_KEY)
    return value if isinstance(value, str) else ""
