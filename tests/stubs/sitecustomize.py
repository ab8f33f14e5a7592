"""Test stub, loaded through PYTHONPATH: name resolution of `hang.test` sleeps like a dead DNS."""

import socket
import time

_real_getaddrinfo = socket.getaddrinfo


def _hanging_getaddrinfo(host, *args, **kwargs):
    if host == "hang.test":
        time.sleep(60)
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _hanging_getaddrinfo
