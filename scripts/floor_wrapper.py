"""The floor: the least a Python wrapper can do for the same job, to measure ours against.

It starts the command, reads a consent file, connects to the endpoint while the command runs,
posts one small JSON event, appends a line to a local file and exits with the command's
status. No config, no facts, no queue, no signals, no error handling: what remains is the
interpreter's start, one spawn, one loopback request and one write. `scripts/bench.py` runs it
beside send_metrics in every round, so each run shows how far we are from the floor there.

    python scripts/floor_wrapper.py CONSENT_FILE http://127.0.0.1:PORT LOG_FILE -- CMD [ARG ...]
"""

import os
import sys
import time


def main() -> None:
    consent_file, url, log_file, _dashdash, *argv = sys.argv[1:]
    start = time.time()
    pid = os.posix_spawnp(argv[0], argv, os.environ)
    with open(consent_file) as fh:
        consented = fh.read().strip() == "yes"
    sock = None
    if consented:
        import socket

        host, _, port = url.removeprefix("http://").partition(":")
        sock = socket.create_connection((host, int(port)), timeout=2.0)
    _pid, status, _usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if sock is not None:
        body = (
            f'{{"event":"command_run","command":"{os.path.basename(argv[0])}",'
            f'"exit_code":{code},"duration_ms":{(time.time() - start) * 1000:.3f}}}'
        ).encode()
        head = (
            f"POST /v1/track HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        while sock.recv(65536):
            pass
        with open(log_file, "ab") as log:
            log.write(body + b"\n")
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
