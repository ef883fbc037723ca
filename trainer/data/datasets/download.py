"""Downloads through torchvision that fail in seconds, never hang: the hosts each dataset comes from
(looked up first, so an offline machine is told at once), a deadline on every socket operation, and an
exception cut to one short line.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Iterator

DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation; torchvision's urlopen sets no timeout of its own


#: The hosts torchvision downloads each dataset from (torchvision.datasets MNIST/FashionMNIST mirrors).
DOWNLOAD_HOSTS = {
    "mnist": ("ossci-datasets.s3.amazonaws.com", "yann.lecun.com"),
    "fashion-mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
    "kmnist": ("codh.rois.ac.jp",),
    "cifar10": ("www.cs.toronto.edu",),
    "cifar100": ("www.cs.toronto.edu",),
}


def short_error(exc: BaseException) -> str:
    """One short line of an exception (torchvision's download errors span lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def unresolvable(name: str) -> str:
    """Why no download host of `name` has an address (name lookup failed for every one: offline),
    or "" when one resolves or the lookup cannot tell (then torchvision tries, as before)."""
    why = ""
    for host in DOWNLOAD_HOSTS.get(name, ()):
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            return ""
        except socket.gaierror as exc:
            why = why or f"cannot resolve {host}: {exc.strerror or exc}"
        except OSError:
            return ""
    return why


@contextlib.contextmanager
def socket_deadline() -> Iterator[None]:
    """A download must fail in seconds, not hang: every socket operation bounded while it runs."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
