# fedflow's FATE runner: runs one pyfate process's work (`python -m fate.components ...`, or
# fedflow's import script) in this interpreter, and records when the component's code began.
#
#   python fate_runner.py run ASSIGNMENT.json
#       a cold start: the worker's child; imports the assignment's `preload`, then runs it.
#   python fate_runner.py serve SOCKET PRELOAD
#       a warm interpreter of the task-controller's pool: imports PRELOAD (comma-separated
#       modules: what `component execute` imports, torch and sklearn among them), listens on
#       the unix socket SOCKET, prints "ready" and waits for ONE assignment. Until it has one,
#       it exits when its stdin (a pipe from the task-controller) reaches EOF: a dead
#       task-controller leaves no interpreter behind. An assignment comes from a worker
#       (SO_PEERCRED: same uid); the interpreter moves itself into that worker's process group
#       (so the worker's supervision, stop and kill cover it), answers {"ok": true}, stops
#       listening and runs the assignment. It is never reused: it exits when the work ends.
#
# ASSIGNMENT: {kind: "module"|"script", target: module name or script path, argv: [args],
#   cwd, env: {name: value}, unset: [names], preload: [modules], stdout, stderr (files,
#   appended; warm only), exit_path}. The exit file gets {"code": N, "computing_ms": unix ms
#   when the component's code began (after every import)}. Nothing is written to stdout but
#   "ready" in serve mode.
import json
import os
import runpy
import select
import socket
import struct
import sys
import time
import traceback


def preload(modules):
    # What cannot be imported is left for the component's own imports to report.
    for name in modules:
        if name:
            try:
                __import__(name)
            except Exception as e:
                print(f"fedflow runner: preloading {name}: {e}", file=sys.stderr)


def write_exit(path, code, computing_ms):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"code": code, "computing_ms": computing_ms}, f)
    os.replace(tmp, path)


def execute(assignment):
    """Runs the assignment here; returns its exit code."""
    os.chdir(assignment["cwd"])
    for name in assignment.get("unset", []):
        os.environ.pop(name, None)
    os.environ.update(assignment.get("env", {}))
    preload(assignment.get("preload", []))
    kind, target = assignment["kind"], assignment["target"]
    if kind == "module":
        sys.argv = [target] + list(assignment["argv"])
        sys.path[0] = assignment["cwd"]
    elif kind == "script":
        sys.argv = [target] + list(assignment["argv"])
        sys.path[0] = os.path.dirname(os.path.abspath(target))
    else:
        raise SystemExit(f"fedflow runner: unknown kind {kind!r}")
    computing_ms = int(time.time() * 1000)
    code = 0
    try:
        if kind == "module":
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target, run_name="__main__")
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    write_exit(assignment["exit_path"], code, computing_ms)
    return code


def redirect(stdout, stderr):
    sys.stdout.flush()
    sys.stderr.flush()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, stdout), (2, stderr)):
        out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(out, fd)
        os.close(out)


def serve(path, modules):
    preload(modules.split(","))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(4)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        readable, _, _ = select.select([sys.stdin, listener], [], [])
        if sys.stdin in readable and not os.read(0, 4096):
            # The task-controller is gone (or let this interpreter go) before any assignment.
            os.unlink(path)
            return 0
        if listener not in readable:
            continue
        conn, _ = listener.accept()
        conn.settimeout(10)
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            peer_pid, peer_uid, _ = struct.unpack("3i", creds)
            if peer_uid != os.getuid():
                raise PermissionError(f"peer uid {peer_uid} is not this interpreter's")
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    raise ValueError("the assignment was cut short")
                data += chunk
            assignment = json.loads(data)
            for key in ("kind", "target", "argv", "cwd", "stdout", "stderr", "exit_path"):
                if key not in assignment:
                    raise ValueError(f"the assignment has no {key}")
            # Into the worker's process group: its kill, stop and liveness checks cover this
            # interpreter from now on.
            os.setpgid(0, os.getpgid(peer_pid))
        except Exception as e:
            try:
                conn.sendall((json.dumps({"error": str(e)}) + "\n").encode())
            except OSError:
                pass
            conn.close()
            continue
        listener.close()
        os.unlink(path)
        conn.sendall((json.dumps({"ok": True, "pid": os.getpid()}) + "\n").encode())
        conn.close()
        redirect(assignment["stdout"], assignment["stderr"])
        return execute(assignment)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        with open(sys.argv[2]) as f:
            assignment = json.load(f)
        return execute(assignment)
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        return serve(sys.argv[2], sys.argv[3])
    print("usage: fate_runner.py run ASSIGNMENT.json | serve SOCKET PRELOAD", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main())
