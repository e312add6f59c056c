#!/usr/bin/python3
"""The line protocol of docs/protocol.md on Python's asyncio, written the way
the asyncio documentation teaches:

- asyncio.start_server with a StreamReader limit of 4096 (readuntil raises
  LimitOverrunError past it); one coroutine per connection reads a request,
  awaits its answer, then reads the next, so answers keep request order;
- factorial: loop.run_in_executor with a ProcessPoolExecutor, as the asyncio
  docs advise for CPU-bound work ("--executor thread" uses the default
  thread pool instead, where gmpy2's digits() holds the GIL and so stalls
  the loop), computing gmpy2.fac(n).digits() (see e2e_common for why
  gmpy2);
- walk: loop.run_in_executor (the default thread pool) running os.walk and
  returning the whole answer, written with one write + drain;
- stats: a 10 ms call_later heartbeat measuring its own lateness.
asyncio sets TCP_NODELAY on its TCP connections itself.

    /usr/bin/python3 bench/e2e/asyncio_server.py [--listen 127.0.0.1:PORT]
                                                 [--executor process|thread]
"""

import asyncio
import concurrent.futures
import signal
import sys

import e2e_common as common

lag = common.Lag()


class Server:
    def __init__(self, factorial_pool):
        self.factorial_pool = factorial_pool

    async def handle(self, reader, writer):
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    break  # the client's EOF; a last partial line is ignored
                except asyncio.LimitOverrunError:
                    writer.write(b"error: line too long\n")
                    break
                line = line[:-1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                writer.write(await self.answer(line))
                await writer.drain()
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def answer(self, line):
        loop = asyncio.get_running_loop()
        kind, arg = common.parse(line)
        if kind == "ping":
            return b"pong\n"
        if kind == "stats":
            return lag.line()
        if kind == "factorial":
            return await loop.run_in_executor(self.factorial_pool, common.factorial_line, arg)
        if kind == "walk":
            return await loop.run_in_executor(None, common.walk_all, arg)
        return common.error_line(arg)


def beat(loop, due):
    now = loop.time()
    lag.record(now - due)
    loop.call_later(common.BEAT, beat, loop, now + common.BEAT)


async def serve(args, factorial_pool):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(Server(factorial_pool).handle, args.host, args.port,
                                        limit=common.MAX_LINE)
    port = server.sockets[0].getsockname()[1]
    print("listening on %s:%d" % (args.host, port), flush=True)
    loop.call_later(common.BEAT, beat, loop, loop.time() + common.BEAT)
    await stop.wait()
    server.close()


def main():
    args = common.arguments(
        "The line protocol on asyncio.",
        lambda p: p.add_argument("--executor", choices=("process", "thread"), default="process"))
    pool = None
    if args.executor == "process":
        # Started (and its workers forked) before the loop runs, as the
        # concurrent.futures docs advise; warmed so that the first request
        # does not pay for the fork.
        pool = concurrent.futures.ProcessPoolExecutor()
        list(pool.map(common.factorial_line, [1] * 4))
    asyncio.run(serve(args, pool))
    if pool:
        pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
