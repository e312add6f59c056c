#!/usr/bin/python3
"""The line protocol of docs/protocol.md on Twisted (Debian's python3-twisted),
written the way the Twisted documentation teaches:

- a LineReceiver per connection (MAX_LENGTH 4096); each answer is a
  Deferred chained after the one before, so answers keep request order;
- factorial: threads.deferToThread (the reactor's thread pool) computing
  gmpy2.fac(n).digits() (see e2e_common for why gmpy2), written with one
  transport.write;
- walk: task.cooperate over a generator that lists one directory per step
  (os.walk, onerror raising so the first error ends the walk) and writes its
  lines, so the reactor runs between directories;
- stats: a 10 ms callLater heartbeat measuring its own lateness;
- IHalfCloseableProtocol: after the client's EOF, answer what was asked,
  then close. TCP_NODELAY on every connection.

Run it with /usr/bin/python3 (Debian's, where python3-twisted lives):
    /usr/bin/python3 bench/e2e/twisted_server.py [--listen 127.0.0.1:PORT]
"""

import os
import sys
import time

from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

import e2e_common as common

lag = common.Lag()


@implementer(IHalfCloseableProtocol)
class LineServer(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = common.MAX_LINE

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.answers = defer.succeed(None)  # the answer being made; the next waits
        self.lost = False
        self.too_long = False

    def then(self, fn, *args):
        self.answers.addCallback(lambda _: fn(*args))
        self.answers.addErrback(self.failed)

    def failed(self, failure):
        if not self.lost:
            self.transport.write(common.error_line(failure.getErrorMessage()))

    def lineReceived(self, line):
        if not self.too_long:
            self.then(self.answer, line[:-1] if line.endswith(b"\r") else line)

    def lineLengthExceeded(self, line):
        self.too_long = True
        self.then(self.refuse)

    def dataReceived(self, data):
        if not self.too_long:
            LineReceiver.dataReceived(self, data)

    def refuse(self):
        self.transport.write(b"error: line too long\n")
        self.transport.loseConnection()

    def readConnectionLost(self):
        self.then(self.transport.loseConnection)

    def writeConnectionLost(self):
        pass

    def connectionLost(self, reason):
        self.lost = True

    def answer(self, line):
        if self.lost:
            return None
        kind, arg = common.parse(line)
        if kind == "ping":
            self.transport.write(b"pong\n")
        elif kind == "stats":
            self.transport.write(lag.line())
        elif kind == "factorial":
            d = threads.deferToThread(common.factorial_line, arg)
            d.addCallback(self.transport.write)
            return d
        elif kind == "walk":
            return self.walk(arg)
        else:
            self.transport.write(common.error_line(arg))
        return None

    def walk(self, top):
        try:
            common.check_top(top)
        except OSError as exc:
            self.transport.write(common.walk_error(top, exc))
            return None
        self.transport.write(common.escape(top) + b"\n")

        def steps():
            for dirpath, dirnames, filenames in os.walk(top, onerror=common.raise_error):
                if self.lost:
                    return
                self.transport.write(common.lines(dirpath, dirnames + filenames))
                yield None

        def done(_):
            self.transport.write(b"\n")

        def error(failure):
            failure.trap(OSError)
            self.transport.write(common.walk_error(top, failure.value))

        d = task.cooperate(steps()).whenDone()
        d.addCallbacks(done, error)
        return d


def beat(due):
    now = time.monotonic()
    lag.record(now - due)
    reactor.callLater(common.BEAT, beat, now + common.BEAT)


def main():
    args = common.arguments("The line protocol on Twisted.")
    factory = protocol.Factory.forProtocol(LineServer)
    port = reactor.listenTCP(args.port, factory, interface=args.host)
    print("listening on %s:%d" % (args.host, port.getHost().port), flush=True)
    reactor.callLater(common.BEAT, beat, time.monotonic() + common.BEAT)
    reactor.run()  # SIGTERM and SIGINT stop it
    return 0


if __name__ == "__main__":
    sys.exit(main())
