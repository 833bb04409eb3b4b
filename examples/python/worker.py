#!/usr/bin/env python3
"""A pipeline worker in Python, written from PROTOCOL.md alone.

It joins a run of the Go engine over ZeroMQ, takes the items of one task
type and sends their results to the collector, beside Go workers of the
same type. It needs Debian's python3-zmq and python3-msgpack (make deps
installs them).

    python3 examples/python/worker.py --distributor tcp://HOST:5551 \\
        --collector tcp://HOST:5558 --type C

With CURVE keys (the README's "Security"), give it its key pair and the
servers' public keys, as ZeroMQ certificates (what the Go programs'
-keygen writes):

    python3 examples/python/worker.py ... --key w1.key_secret \\
        --distributor-key dist.key --collector-key coll.key

Its work (replace the function `work`): an item of the seed's examples,
{"workload": seconds}, is slept and has no result; a number is squared;
anything else fails for good (no retry). So it can stand in for a worker of
the singlethread, multithread or dependencies examples.

It keeps the run's rules: heartbeats both ways with the distributor at the
interval the welcome gives, the distributor taken for lost after the
welcome's liveness timeout, a "gone" reject answered by joining again, and
a goodbye, confirmed, at the end.

Exit codes, as the Go programs': 0 the run completed, 1 failed or refused,
3 aborted by the distributor, 130 stopped by SIGINT or SIGTERM.
"""

import argparse
import os
import signal
import struct
import sys
import time

import msgpack
import zmq
import zmq.auth

# The envelope: version, kind, role, flags, attempt, count, run id, item id,
# token, number of items, task type length; then the task type, the items
# and the payload. Each item: id, attempt, flags, token, payload length,
# payload; with FLAG_TRACED, the payload starts with the item's trace
# context (its length in 2 bytes, then the context). Big-endian.
VERSION = 5
HEADER = struct.Struct(">BBBBIIQQ16sIH")
ITEM = struct.Struct(">QIB16sI")
NO_TOKEN = bytes(16)
HELLO, WELCOME, READY, WORK, RESULT = 1, 2, 3, 4, 5
ACK, METADATA, HEARTBEAT, END, BYE, REJECT, DONE, STATUS = 7, 8, 9, 10, 11, 12, 13, 14
KINDS = {HELLO, WELCOME, READY, WORK, RESULT, ACK, METADATA, HEARTBEAT, END, BYE, REJECT, DONE, STATUS}
ROLE_WORKER = 1
REJECT_GONE = 4
FLAG_FAILED = 1 << 0
FLAG_PERMANENT = 1 << 3
FLAG_TRACED = 1 << 5
TRACE_LEN = struct.Struct(">H")

EXIT_OK, EXIT_FAILED, EXIT_ABORTED, EXIT_STOPPED = 0, 1, 3, 130


def encode(kind, role=0, flags=0, attempt=0, count=0, run=0, item=0, token=NO_TOKEN, task_type=b"", items=(), payload=b""):
    """items: (id, attempt, flags, token, trace, payload) tuples."""
    parts = [HEADER.pack(VERSION, kind, role, flags, attempt, count, run, item, token, len(items), len(task_type)), task_type]
    for i_id, i_attempt, i_flags, i_token, i_trace, i_payload in items:
        if i_trace:
            i_flags |= FLAG_TRACED
            i_payload = TRACE_LEN.pack(len(i_trace)) + i_trace + i_payload
        parts += [ITEM.pack(i_id, i_attempt, i_flags, i_token, len(i_payload)), i_payload]
    parts.append(payload)
    return b"".join(parts)


def decode(frame):
    """Returns the envelope as a dict, or None for a frame to drop."""
    if len(frame) < HEADER.size:
        return None
    version, kind, role, flags, attempt, count, run, item, token, m, n = HEADER.unpack_from(frame)
    if version != VERSION or kind not in KINDS or len(frame) < HEADER.size + n:
        return None
    off = HEADER.size + n
    items = []
    for _ in range(m):
        if len(frame) < off + ITEM.size:
            return None
        i_id, i_attempt, i_flags, i_token, p = ITEM.unpack_from(frame, off)
        off += ITEM.size
        if len(frame) < off + p:
            return None
        payload, trace = frame[off:off + p], b""
        if i_flags & FLAG_TRACED:
            if p < TRACE_LEN.size or TRACE_LEN.size + TRACE_LEN.unpack_from(payload)[0] > p:
                return None
            t = TRACE_LEN.unpack_from(payload)[0]
            trace, payload = payload[TRACE_LEN.size:TRACE_LEN.size + t], payload[TRACE_LEN.size + t:]
        items.append({"id": i_id, "attempt": i_attempt, "flags": i_flags, "token": i_token, "trace": trace, "payload": payload})
        off += p
    return {"kind": kind, "role": role, "flags": flags, "attempt": attempt, "count": count, "run": run, "item": item,
            "token": token, "task_type": frame[HEADER.size:HEADER.size + n], "items": items, "payload": frame[off:]}


class Permanent(Exception):
    """An error another attempt would meet again: the item fails at once."""


def work(task_type, item, metadata):
    """Executes one item and returns its result (None for no result)."""
    if isinstance(item, dict) and "workload" in item:
        time.sleep(max(float(item["workload"]), 0.0))
        return None
    if isinstance(item, (int, float)) and not isinstance(item, bool):
        return item * item
    raise Permanent("cannot work on %r" % (item,))


class Stopped(Exception):
    """A signal asked the worker to stop."""


class Gone(Exception):
    """The distributor took this worker for gone: join again."""


class Lost(Exception):
    """The distributor was silent for its liveness timeout."""


class Worker:
    def __init__(self, args):
        self.args = args
        self.task_type = args.type.encode()
        self.ctx = zmq.Context()
        self.dist = self.ctx.socket(zmq.DEALER)
        self.coll = self.ctx.socket(zmq.DEALER)
        for s in (self.dist, self.coll):
            s.setsockopt(zmq.LINGER, 1000)
            # A routing id of our own, as PROTOCOL.md requires: 16 random
            # bytes, the first not zero.
            rid = bytearray(os.urandom(16))
            rid[0] |= 0x80
            s.setsockopt(zmq.ROUTING_ID, bytes(rid))
        if args.key:
            # CURVE: this worker's key pair, and each server's public key.
            public, secret = zmq.auth.load_certificate(args.key)
            for s, server in ((self.dist, args.distributor_key), (self.coll, args.collector_key)):
                s.curve_publickey, s.curve_secretkey = public, secret
                s.curve_serverkey = zmq.auth.load_certificate(server)[0]
        # The collector first, as the Go worker does; no handshake there.
        self.coll.connect(args.collector)
        self.dist.connect(args.distributor)
        self.stop = False
        self.handled = 0  # in all runs
        self.finished = 0  # in this run: the heartbeats' count
        self.metadata = None
        self.run_id = 0
        self.interval = 1.0  # seconds, from the welcome
        self.timeout = 5.0
        self.deadline = 0.0
        self.heard = time.monotonic()
        self.beat = time.monotonic()

    def send(self, kind, **fields):
        """Sends to the distributor, stamped with the run."""
        self.dist.send(encode(kind, run=self.run_id, **fields))

    def recv(self, timeout=None):
        """The next envelope of this run from the distributor, or None once
        timeout seconds passed. Meanwhile it sends a heartbeat every
        interval, and raises Lost when the distributor was silent for its
        timeout (only once welcomed), Stopped when a signal asked to stop
        (unless timeout is given, as for the goodbye)."""
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.stop and timeout is None:
                raise Stopped()
            now = time.monotonic()
            if self.run_id and now - self.beat >= self.interval:
                self.send(HEARTBEAT, role=ROLE_WORKER, count=self.finished & 0xFFFFFFFF)
                self.beat = now
            if self.run_id and now - self.heard > self.timeout:
                raise Lost()
            if until is not None and now >= until:
                return None
            if not self.dist.poll(100):
                continue
            env = decode(self.dist.recv())
            if env is None:
                continue
            self.heard = time.monotonic()
            if env["kind"] == HEARTBEAT:
                continue
            if self.run_id and env["run"] != self.run_id and env["kind"] != REJECT:
                continue  # a message of another run
            return env

    def join(self):
        """Says hello (again each second while no answer comes) until the
        distributor welcomes this worker."""
        self.run_id = 0
        while True:
            self.dist.send(encode(HELLO, role=ROLE_WORKER, count=1, task_type=self.task_type))
            env = self.recv(timeout=1.0)
            while env is not None and env["kind"] not in (WELCOME, REJECT, END):
                env = self.recv(timeout=1.0)  # heartbeats or work of an earlier membership
            if env is None:
                continue
            if env["kind"] == WELCOME:
                self.run_id = env["run"]
                self.finished = 0
                self.interval = max(env["count"], 1) / 1000.0
                self.timeout = max(env["attempt"] / 1000.0, 2 * self.interval)
                self.deadline = env["item"] / 1000.0
                self.metadata = msgpack.unpackb(env["payload"], raw=False) if env["payload"] else None
                self.heard = self.beat = time.monotonic()
                return None
            if env["kind"] == REJECT and env["count"] == REJECT_GONE:
                continue  # an answer to a message sent before this hello
            if env["kind"] == REJECT:
                print("rejected (code %d): %s" % (env["count"], env["payload"].decode(errors="replace")), file=sys.stderr)
                return EXIT_FAILED
            return self.ended(env)

    def run(self):
        while True:
            code = self.join()
            if code is not None:
                return code
            # Credit for the items this worker may hold at once; each ACK
            # gives one back, so no ready per item.
            self.send(READY, count=self.args.window)
            try:
                while True:
                    env = self.recv()
                    if env["kind"] == WORK:
                        self.execute(env)
                    elif env["kind"] == END:
                        return self.ended(env)
                    elif env["kind"] == REJECT and env["count"] == REJECT_GONE:
                        raise Gone()
            except Gone:
                print("the distributor took this worker for gone; joining again", file=sys.stderr)
            except Lost:
                print("distributor lost: nothing from it for %.1f s" % self.timeout, file=sys.stderr)
                return EXIT_FAILED

    def execute(self, env):
        """Executes the items of a work message, sending each outcome as
        soon as it has it: a result of one item, which repeats the work's
        run, task type and count (the attempt limit) and the item's id,
        attempt and token (without the token the collector drops it), and
        carries the item's trace context on."""
        for it in env["items"]:
            started = time.monotonic()
            flags = 0
            try:
                out = work(env["task_type"].decode(), msgpack.unpackb(it["payload"], raw=False), self.metadata)
                if self.deadline and time.monotonic() - started > self.deadline:
                    raise TimeoutError("the attempt ran past its deadline of %.3f s" % self.deadline)
                payload = msgpack.packb(out, use_bin_type=True)
            except Exception as e:  # the item fails, the worker goes on
                flags = FLAG_FAILED | (FLAG_PERMANENT if isinstance(e, Permanent) else 0)
                payload = str(e).encode()
            self.coll.send(encode(RESULT, run=env["run"], task_type=env["task_type"], count=env["count"],
                                  items=[(it["id"], it["attempt"], flags, it["token"], it["trace"], payload)]))
            self.handled += 1
            self.finished += 1

    def ended(self, env):
        if env["payload"]:
            print("run aborted: %s" % env["payload"].decode(errors="replace"), file=sys.stderr)
            self.send(BYE, role=ROLE_WORKER)  # confirm; no answer comes
            return EXIT_ABORTED
        self.goodbye([])
        return EXIT_OK

    def goodbye(self, unfinished):
        """Says goodbye with the items this worker will not finish, and
        waits a moment for the distributor to confirm; work that crosses
        the goodbye is handed back in a second one."""
        for _ in range(2):
            payload = msgpack.packb(unfinished) if unfinished else b""
            self.send(BYE, role=ROLE_WORKER, payload=payload)
            unfinished = []
            while True:
                try:
                    env = self.recv(timeout=1.0)
                except Lost:
                    return
                if env is None or env["kind"] == BYE:
                    break
                if env["kind"] == WORK:
                    unfinished += [it["id"] for it in env["items"]]
                elif env["kind"] == END and env["payload"]:
                    return
            if not unfinished:
                return

    def close(self):
        self.dist.close()
        self.coll.close()
        self.ctx.term()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--distributor", required=True, help="the distributor's endpoint, tcp://host:port or ipc:///path")
    p.add_argument("--collector", required=True, help="the collector's endpoint")
    p.add_argument("--type", required=True, help="the task type to execute")
    p.add_argument("--window", type=int, default=2, help="items held at once: the one executing and the ones waiting")
    p.add_argument("--key", help="this worker's CURVE key pair: a secret certificate (NAME.key_secret)")
    p.add_argument("--distributor-key", help="with --key: the distributor's public certificate")
    p.add_argument("--collector-key", help="with --key: the collector's public certificate")
    args = p.parse_args()
    if args.window < 1:
        p.error("--window must be at least 1")
    if args.key and not (args.distributor_key and args.collector_key):
        p.error("--key needs --distributor-key and --collector-key")
    w = Worker(args)

    def stop(signum, frame):
        if w.stop:
            sys.exit(EXIT_STOPPED)  # a second signal: at once
        w.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = w.run()
    except Stopped:
        # Hand back what reached this worker and was not executed.
        pending = []
        while w.dist.poll(0):
            env = decode(w.dist.recv())
            if env is not None and env["kind"] == WORK:
                pending += [it["id"] for it in env["items"]]
        w.goodbye(pending)
        code = EXIT_STOPPED
    print("handled %d items" % w.handled, flush=True)
    w.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
