#!/usr/bin/env python3
"""Submits a FATE DSL v2 + runtime conf v2 job to a fedflow scheduler and watches it to the end.

Prints every event of the job as it arrives (the job's status changes, each task's federated
status and its status on each party), then the final status. Exits 0 if the job succeeded,
1 otherwise (failed, canceled, timed out, or an RPC error).

Usage:
  python client.py --scheduler HOST:PORT --dsl dsl.json --conf conf.json

The stubs must have been generated first: python generate.py (see README.md).
"""

import argparse
import datetime
import json
import os
import pathlib
import sys
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

try:
    import grpc
    from fedflow.common.v1 import common_pb2
    from fedflow.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
except ImportError as error:  # pragma: no cover - only without deps or stubs
    print(f"client.py: {error}; install requirements.txt and run generate.py first",
          file=sys.stderr)
    sys.exit(1)

JOB_END = {
    common_pb2.JOB_STATUS_SUCCESS,
    common_pb2.JOB_STATUS_FAILED,
    common_pb2.JOB_STATUS_CANCELED,
    common_pb2.JOB_STATUS_TIMEOUT,
}


def job_status(value: int) -> str:
    """JOB_STATUS_SUCCESS -> success."""
    return common_pb2.JobStatus.Name(value).removeprefix("JOB_STATUS_").lower()


def task_status(value: int) -> str:
    """TASK_STATUS_RUNNING -> running."""
    return common_pb2.TaskStatus.Name(value).removeprefix("TASK_STATUS_").lower()


def stamp(time_ms: int) -> str:
    if not time_ms:
        return "--:--:--.---"
    moment = datetime.datetime.fromtimestamp(time_ms / 1000)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def describe(event) -> str:
    kind = event.WhichOneof("event")
    if kind == "job":
        line = f"job {event.job_id}: {job_status(event.job.status)}"
        if event.job.reason:
            line += f" ({event.job.reason})"
        return line
    if kind == "task":
        task = event.task
        where = f"{task.role} {task.party_id}" if task.role or task.party_id else "federated"
        line = f"task {task.component} v{task.version} {where}: {task_status(task.status)}"
        if task.reason:
            line += f" ({task.reason})"
        return line
    return f"unknown event {event}"


def read_json(path: str, what: str) -> str:
    """Reads the file and checks it is JSON; the scheduler gets the text as it is."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SystemExit(f"client.py: cannot read the {what} {path}: {error}")
    try:
        json.loads(text)
    except ValueError as error:
        raise SystemExit(f"client.py: the {what} {path} is not JSON: {error}")
    return text


def rpc_error(error: grpc.RpcError) -> str:
    return f"{error.code().name}: {error.details()}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Submit a fedflow job and watch it until it ends.")
    parser.add_argument("--scheduler", default=os.environ.get("FEDFLOW_SCHEDULER"),
                        help="HOST:PORT of the initiator's scheduler "
                             "(default: $FEDFLOW_SCHEDULER)")
    parser.add_argument("--dsl", required=True, help="DSL v2 file (JSON)")
    parser.add_argument("--conf", required=True, help="runtime conf v2 file (JSON)")
    parser.add_argument("--request-id", default=None,
                        help="idempotency key of the submit (default: a fresh UUID)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up watching after this many seconds (default 600)")
    args = parser.parse_args()
    if not args.scheduler:
        parser.error("--scheduler (or FEDFLOW_SCHEDULER) is required")

    dsl = read_json(args.dsl, "DSL")
    conf = read_json(args.conf, "runtime conf")

    with grpc.insecure_channel(args.scheduler) as channel:
        scheduler = scheduler_pb2_grpc.SchedulerStub(channel)
        try:
            submitted = scheduler.SubmitJob(
                scheduler_pb2.SubmitJobRequest(
                    dsl=dsl, runtime_conf=conf,
                    request_id=args.request_id or str(uuid.uuid4())),
                timeout=30)
        except grpc.RpcError as error:
            print(f"submit failed: {rpc_error(error)}", file=sys.stderr)
            return 1
        job_id = submitted.job_id
        print(f"submitted job {job_id} to {args.scheduler}", flush=True)

        final = None
        try:
            # A snapshot of the job and its tasks, then every change; the stream ends with
            # the job.
            for event in scheduler.WatchJob(
                    scheduler_pb2.WatchJobRequest(job_id=job_id), timeout=args.timeout):
                print(f"{stamp(event.time_ms)}  {describe(event)}", flush=True)
                if event.WhichOneof("event") == "job":
                    final = event.job.status
        except grpc.RpcError as error:
            print(f"watch failed: {rpc_error(error)}", file=sys.stderr)

        # The last status the stream showed should be the end; ask the scheduler to be sure
        # (and to get the reason of a failure).
        try:
            job = scheduler.GetJob(scheduler_pb2.GetJobRequest(job_id=job_id), timeout=30).job
            final = job.status
            reason = job.reason
        except grpc.RpcError as error:
            print(f"get job failed: {rpc_error(error)}", file=sys.stderr)
            reason = ""

    if final is None:
        print(f"job {job_id} final status: unknown", flush=True)
        return 1
    if final not in JOB_END:
        print(f"job {job_id} final status: {job_status(final)} (not ended)", flush=True)
        return 1
    line = f"job {job_id} final status: {job_status(final)}"
    if reason:
        line += f" ({reason})"
    print(line, flush=True)
    return 0 if final == common_pb2.JOB_STATUS_SUCCESS else 1


if __name__ == "__main__":
    sys.exit(main())
