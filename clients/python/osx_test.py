#!/usr/bin/env python3
"""Checks the party-gateway's OSX data plane the way pyfate's osx federation uses it.

Submits a two-party job (one Sleep component) to the initiator's scheduler, waits until the
push of party GUEST's component is accepted (the attempt runs on both parties), then, with
the exact headers pyfate sends (a new channel per call, as pyfate makes):
pushes through GUEST's transfer port to HOST, pops on HOST's, checks codes, FIFO order per
topic, the pop timeout (E0000000601), a refused push for a session that does not run, and
that stopping the job closes the session. Exits 0 when every check passed.

Needs the stubs of proto/osx/osx.proto (generated into --stubs by osx-python-test.sh) and of
fedflow's API (clients/python/gen, from generate.py).
"""

import argparse
import json
import pathlib
import sys
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

import grpc  # noqa: E402
from fedflow.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc  # noqa: E402

OK, TIMED_OUT = "E0000000000", "E0000000601"
OPTIONS = [("grpc.max_send_message_length", 2**31 - 1),
           ("grpc.max_receive_message_length", 2**31 - 1)]


def fail(message: str) -> None:
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Osx:
    """One party's components talking to their gateway, as pyfate's MQChannel does."""

    def __init__(self, pb, pbg, address: str, party: str, session: str):
        self.pb, self.pbg = pb, pbg
        self.address, self.party, self.session = address, party, session

    def _stub(self):
        channel = grpc.insecure_channel(self.address, options=OPTIONS)
        return channel, self.pbg.PrivateTransferTransportStub(channel)

    def push(self, target: str, topic: str, name: str, body: bytes):
        head = json.dumps({"content_type": "text/plain", "app_id": target,
                           "message_id": name, "correlation_id": "default.tag"}).encode()
        payload = self.pb.Message(head=head, body=body).SerializeToString()
        metadata = [("x-ptp-trace-id", uuid.uuid4().hex),
                    ("x-ptp-session-id", self.session),
                    ("x-ptp-target-node-id", target),
                    ("x-ptp-from-node-id", self.party),
                    ("x-ptp-tech-provider-code", "FATE")]
        channel, stub = self._stub()
        with channel:
            return stub.push(self.pb.PushInbound(topic=topic, payload=payload),
                             metadata=metadata, timeout=30)

    def pop(self, topic: str, timeout_ms: int):
        metadata = [("x-ptp-session-id", self.session),
                    ("x-ptp-from-node-id", self.party),
                    ("x-ptp-tech-provider-code", "FATE"),
                    ("x-ptp-trace-id", uuid.uuid4().hex)]
        channel, stub = self._stub()
        with channel:
            return stub.pop(self.pb.PopInbound(topic=topic, timeout=timeout_ms),
                            metadata=metadata, timeout=timeout_ms / 1000 + 30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", required=True, help="the initiator's scheduler HOST:PORT")
    parser.add_argument("--guest", required=True, help="GUEST_PARTY=HOST:PORT of its osx port")
    parser.add_argument("--host", required=True, help="HOST_PARTY=HOST:PORT of its osx port")
    parser.add_argument("--stubs", required=True, type=pathlib.Path,
                        help="directory holding osx_pb2.py and osx_pb2_grpc.py")
    parser.add_argument("--deadline", type=float, default=60.0)
    args = parser.parse_args()
    sys.path.insert(0, str(args.stubs))
    import osx_pb2 as pb  # noqa: E402
    import osx_pb2_grpc as pbg  # noqa: E402

    guest, guest_osx = args.guest.split("=", 1)
    host, host_osx = args.host.split("=", 1)
    dsl = {"components": {"exchange": {"module": "Sleep"}}}
    conf = {"dsl_version": 2,
            "initiator": {"role": "guest", "party_id": int(guest)},
            "role": {"guest": [int(guest)], "host": [int(host)]},
            "job_parameters": {"common": {"task_cores": 1}},
            "component_parameters": {"common": {"exchange": {"seconds": 300}}}}
    with grpc.insecure_channel(args.scheduler) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerStub(channel)
        job_id = scheduler.SubmitJob(scheduler_pb2.SubmitJobRequest(
            dsl=json.dumps(dsl), runtime_conf=json.dumps(conf),
            request_id=str(uuid.uuid4())), timeout=30).job_id
        print(f"submitted job {job_id}")
        session = f"{job_id}_exchange_0"
        sender = Osx(pb, pbg, guest_osx, guest, session)
        receiver = Osx(pb, pbg, host_osx, host, session)

        # Until the attempt runs on both parties, pushes are refused: PERMISSION_DENIED before
        # the task exists on a party, UNAVAILABLE while it waits to start there.
        deadline = time.monotonic() + args.deadline
        seen = ""
        while True:
            try:
                out = sender.push(host, "probe", "probe", b"\x00probe")
                if out.code != OK:
                    fail(f"probe push answered {out.code} {out.message}")
                break
            except grpc.RpcError as error:
                seen = f"{error.code()} {error.details()}"
                waiting = {grpc.StatusCode.PERMISSION_DENIED: "E0000000403",
                           grpc.StatusCode.UNAVAILABLE: "E0000000607"}
                if not error.details().startswith(waiting.get(error.code(), "-")):
                    fail(f"push refused other than for a session not yet running: {seen}")
            if time.monotonic() > deadline:
                fail(f"session {session} never opened on both parties; last: {seen}")
            time.sleep(0.2)
        print(f"session {session} open on parties {guest} and {host}")
        out = receiver.pop("probe", 5000)
        if out.code != OK:
            fail(f"pop of the probe answered {out.code}")

        topics = [f"{session}-guest-{guest}-host-{host}-w",
                  f"{session}-guest-{guest}-host-{host}-g-0"]
        for i in range(10):
            for topic in topics:
                out = sender.push(host, topic, f"m{i}", b"\x00" + f"{topic}/{i}".encode())
                if out.code != OK:
                    fail(f"push {topic}/{i} answered {out.code} {out.message}")
        for topic in reversed(topics):
            for i in range(10):
                out = receiver.pop(topic, 5000)
                if out.code != OK:
                    fail(f"pop {topic}/{i} answered {out.code} {out.message}")
                message = pb.Message()
                message.ParseFromString(out.payload)
                head = json.loads(message.head.decode())
                if message.body != b"\x00" + f"{topic}/{i}".encode() or head["message_id"] != f"m{i}":
                    fail(f"{topic}: expected message {i}, popped {message.body!r} ({head})")
        print("20 messages over 2 topics popped in order on the receiving party")

        started = time.monotonic()
        out = receiver.pop(topics[0], 500)
        waited = time.monotonic() - started
        if out.code != TIMED_OUT or out.payload:
            fail(f"pop of an empty queue answered {out.code} (expected {TIMED_OUT})")
        if waited < 0.5:
            fail(f"pop of an empty queue returned after {waited:.3f}s, before its 500 ms")
        print(f"pop of an empty queue: {TIMED_OUT} after {waited:.2f}s")

        try:
            Osx(pb, pbg, guest_osx, guest, f"{job_id}_nosuch_0").push(host, "t", "m", b"\x00")
            fail("a push for a session that does not run was accepted")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.PERMISSION_DENIED or "not a running task attempt" not in error.details():
                fail(f"a push for a session that does not run: {error.code()} {error.details()}")
        print("a push for a session that does not run: refused")

        scheduler.StopJob(scheduler_pb2.StopJobRequest(job_id=job_id, request_id=str(uuid.uuid4())),
                          timeout=30)
        deadline = time.monotonic() + args.deadline
        while True:
            try:
                sender.push(host, topics[0], "late", b"\x00late")
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                    break
                fail(f"a push after the stop: {error.code()} {error.details()}")
            if time.monotonic() > deadline:
                fail("the session stayed open after the job was stopped")
            time.sleep(0.2)
        print("stopping the job closed the session")
    print("PASS: pyfate-style push, pop and pop timeout through two parties' gateways")
    return 0


if __name__ == "__main__":
    sys.exit(main())
