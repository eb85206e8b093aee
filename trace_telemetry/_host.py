"""What an event says about the machine: name, OS and local IP address.

Resolved once per process and shared by every client. The IP lookup never
sends a packet: on Linux it asks the kernel for interface addresses; elsewhere
it resolves the host name in a background thread, so nothing can block
``track()``.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import socket
import struct
import sys
import threading
import time
from typing import List, Optional

__all__ = ["HostInfo", "host_info"]

#: How often the IP address is looked up again (DHCP, VPNs, laptops moving).
IP_REFRESH_SECONDS = 300.0


class HostInfo:
    """Machine facts for the event envelope; cheap to read, refreshed lazily."""

    def __init__(self) -> None:
        self.machine_name = _machine_name()
        self.os_description = _os_description()
        self.ip_address = ""
        self._ip_checked_at = -IP_REFRESH_SECONDS
        self._lock = threading.Lock()
        self.refresh_ip(blocking=sys.platform.startswith("linux"))

    def refresh_ip(self, blocking: bool = False) -> None:
        """Look the IP address up again if it is stale.

        Args:
            blocking: resolve on this thread. Only safe where the lookup
                cannot block (the Linux interface query); callers on a
                user's thread pass ``False``.
        """
        now = time.monotonic()
        if now - self._ip_checked_at < IP_REFRESH_SECONDS:
            return
        if not self._lock.acquire(blocking=False):
            return
        self._ip_checked_at = now
        if blocking:
            try:
                self._resolve()
            finally:
                self._lock.release()
            return
        try:
            thread = threading.Thread(
                target=self._resolve_and_release, name="trace-telemetry-ip", daemon=True
            )
            thread.start()
        except Exception:  # noqa: BLE001 - e.g. interpreter shutdown
            self._lock.release()

    def _resolve_and_release(self) -> None:
        try:
            self._resolve()
        finally:
            self._lock.release()

    def _resolve(self) -> None:
        try:
            address = local_ip_address()
        except Exception:  # noqa: BLE001 - diagnostics only
            address = ""
        self.ip_address = address


def _machine_name() -> str:
    try:
        return socket.gethostname()
    except Exception:  # noqa: BLE001
        return ""


def _os_description() -> str:
    """Like .NET ``RuntimeInformation.OSDescription``: system, release, version."""
    try:
        if hasattr(os, "uname"):
            uname = os.uname()
            text = f"{uname.sysname} {uname.release} {uname.version}"
        else:  # Windows; platform.uname() there does not spawn a process
            text = f"{platform.system()} {platform.release()} {platform.version()}"
        return " ".join(text.split()) or sys.platform
    except Exception:  # noqa: BLE001
        return sys.platform


def local_ip_address() -> str:
    """The first non-loopback IPv4 address of this machine, or ``""``."""
    candidates = _linux_interface_addresses() if sys.platform.startswith("linux") else []
    if not candidates:
        try:
            candidates = socket.gethostbyname_ex(socket.gethostname())[2]
        except OSError:
            candidates = []
    for address in candidates:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            continue
        if not (parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified):
            return address
    return ""


def _linux_interface_addresses() -> List[str]:
    """IPv4 addresses of the interfaces, via ``SIOCGIFADDR``; sends nothing."""
    import fcntl  # noqa: PLC0415 - POSIX only

    siocgifaddr = 0x8915
    found: List[str] = []
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            request = struct.pack("256s", name.encode("utf-8")[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), siocgifaddr, request)
            except OSError:
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return found


_shared: Optional[HostInfo] = None
_shared_lock = threading.Lock()


def host_info() -> HostInfo:
    """The process-wide :class:`HostInfo`, built on first use."""
    global _shared  # noqa: PLW0603
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = HostInfo()
    return _shared


def _after_fork_in_child() -> None:
    """A lock held by a thread that does not exist in the child would stay held."""
    global _shared_lock  # noqa: PLW0603
    _shared_lock = threading.Lock()
    if _shared is not None:
        _shared._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
