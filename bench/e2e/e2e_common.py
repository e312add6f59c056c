"""What the Python peers of bench/e2e share: the requests of docs/protocol.md,
the answers' formats, N! as decimal, and the lag heartbeat's record.

N! as decimal: CPython 3.11's int -> str is quadratic and refuses more than
4300 digits (sys.set_int_max_str_digits); turning 1,000,000! (5.5 million
digits) into a str that way takes minutes. A Python user who needs it in
seconds reaches for gmpy2 (Debian's python3-gmpy2): gmpy2.fac() is GMP's
mpz_fac_ui and mpz.digits() is GMP's mpz_get_str, the same code the C peer
and the client's check use. Measured here: fac(10**6) 0.2 s, digits() 0.76 s,
and digits() holds the GIL all the while (even with the context's
allow_release_gil), so a thread computing it stalls the event loop's thread.
"""

import argparse
import os
import stat
from collections import deque

import gmpy2

MAX_LINE = 4096
MAX_N = 100_000_000
BEAT = 0.010  # the lag heartbeat's period, seconds


def parse(line):
    """A request line (bytes, "\\r" removed) as (kind, argument):
    ("ping", None), ("stats", None), ("factorial", int), ("walk", bytes),
    or ("error", message)."""
    if line == b"ping":
        return "ping", None
    if line == b"stats":
        return "stats", None
    if line.startswith(b"factorial "):
        arg = line[10:]
        if arg.isdigit() and len(arg) <= 12 and int(arg) <= MAX_N:
            return "factorial", int(arg)
        return "error", "factorial: N must be 0 to 100000000"
    if line.startswith(b"walk "):
        if len(line) > 5:
            return "walk", line[5:]
        return "error", "walk: no directory"
    return "error", "unknown request"


def error_line(message):
    return b"error: " + message.encode("utf-8", "replace") + b"\n"


def escape(path):
    """A path as the protocol sends it: "\\n" and "\\\\" escaped."""
    if b"\\" in path or b"\n" in path:
        return path.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
    return path


def lines(dirpath, names):
    """The answer lines of one directory's entries, as one bytes."""
    return b"".join(escape(os.path.join(dirpath, n)) + b"\n" for n in names)


def check_top(top):
    """Raises OSError unless `top` is a directory (a symlink is not one)."""
    if not stat.S_ISDIR(os.lstat(top).st_mode):
        raise NotADirectoryError(20, "Not a directory", top)


def walk_error(path, exc):
    """The error line for an OSError of the walk (its path if it has one)."""
    where = exc.filename if isinstance(getattr(exc, "filename", None), bytes) else path
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return b"error: walk: " + escape(where) + b": " + why.encode("utf-8", "replace") + b"\n"


def raise_error(exc):
    """os.walk's onerror: the first error ends the walk."""
    raise exc


def factorial_line(n):
    """N! in decimal with its "\\n", as bytes: GMP through gmpy2."""
    gmpy2.get_context().allow_release_gil = True
    return gmpy2.fac(n).digits().encode("ascii") + b"\n"


def walk_all(top):
    """The whole answer to `walk top` as one bytes (for a thread)."""
    try:
        check_top(top)
    except OSError as exc:
        return walk_error(top, exc)
    out = [escape(top) + b"\n"]
    try:
        for dirpath, dirnames, filenames in os.walk(top, onerror=raise_error):
            out.append(lines(dirpath, dirnames + filenames))
    except OSError as exc:
        out.append(walk_error(top, exc))
        return b"".join(out)
    out.append(b"\n")
    return b"".join(out)


class Lag:
    """How late the heartbeat ran: the last 65536 beats, in seconds."""

    def __init__(self):
        self.samples = deque(maxlen=65536)

    def record(self, late):
        self.samples.append(late if late > 0 else 0.0)

    def line(self):
        v = sorted(self.samples)
        if not v:
            return b"lag p50_us=0 p99_us=0 max_us=0\n"

        def rank(p):
            return int(v[max(0, -(-len(v) * p // 100) - 1)] * 1e6)

        return b"lag p50_us=%d p99_us=%d max_us=%d\n" % (rank(50), rank(99), int(v[-1] * 1e6))


def arguments(description, configure=None):
    """The command line: --listen HOST:PORT (default 127.0.0.1:0), and what
    `configure(parser)` adds. Returns the parsed arguments with .host and
    .port."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    if configure:
        configure(parser)
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    args.host, args.port = host, int(port)
    return args
