"""``urbansound ui`` on a network: which addresses reach it, and what MLflow must allow.

MLflow's server checks the ``Host`` header of every request (``--allowed-hosts``; by
default localhost and private IPs) and the ``Origin`` of every state-changing one
(``--cors-allowed-origins``; by default localhost only).  Bound to ``0.0.0.0`` it
answers other machines that use its name with 403, and refuses their UI's writes, until
both name the addresses people use.  It has no authentication of its own.
"""

from __future__ import annotations

import ipaddress
import socket

WILDCARDS = ("0.0.0.0", "::", "")
"""Bind addresses that mean "every interface"."""

LOCAL_HOSTS = ("localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*", "[::1]", "[[]::1]:*")
"""The loopback Host headers MLflow allows by default (``[[]`` escapes fnmatch's ``[``);
kept when :func:`allowed_hosts` names others, so this machine still reaches its UI."""


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.x.x.x`` or ``::1``: only this machine can connect."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def machine_addresses() -> list[str]:
    """This machine's names and non-loopback IP addresses (hostname, fully qualified
    name, then IPv4 and IPv6 addresses), each once; those that may reach it from elsewhere."""
    names: list[str] = []
    hostname = socket.gethostname()
    for name in (hostname, socket.getfqdn()):
        if name and not is_loopback(name) and name not in names:
            names.append(name)
    ips: list[str] = []
    try:
        infos = socket.getaddrinfo(hostname, None)
    except OSError:  # a hostname that does not resolve: the route below still says
        infos = []
    # an IP family's sockaddr starts with the address as text (typeshed also allows int)
    candidates = [info[4][0] for info in infos if isinstance(info[4][0], str)]
    try:  # the address of the default route (a UDP "connect" sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.254.254.254", 1))
            candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    for ip in candidates:
        ip = ip.split("%")[0]  # an IPv6 zone
        try:
            parsed = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if (
            not (parsed.is_loopback or parsed.is_unspecified or parsed.is_link_local)
            and ip not in ips
        ):
            ips.append(ip)
    ips.sort(key=lambda a: (":" in a, a))
    return names + ips


def reachable_addresses(host: str, machine: list[str] | None = None) -> list[str]:
    """The addresses to print for a server bound to ``host``: the machine's names and IPs
    (``machine``, default :func:`machine_addresses`) for a wildcard (``0.0.0.0``: IPv4
    only), else ``host`` itself."""
    if host not in WILDCARDS:
        return [host]
    found = machine_addresses() if machine is None else list(machine)
    if host == "0.0.0.0":
        found = [a for a in found if ":" not in a]
    return found or [socket.gethostname()]


def allowed_hosts(addresses: list[str], port: int) -> list[str]:
    """MLflow's ``--allowed-hosts`` for ``addresses``: each as ``HOST:PORT`` (the Host
    header a browser sends) and bare, plus :data:`LOCAL_HOSTS`."""
    out = list(LOCAL_HOSTS)
    for a in addresses:
        for item in (f"{url_host(a)}:{port}", url_host(a)):
            if item not in out:
                out.append(item)
    return out


def cors_origins(addresses: list[str], port: int) -> list[str]:
    """MLflow's ``--cors-allowed-origins`` for ``addresses``: ``http://HOST:PORT`` each
    (the UI's own origin when opened at that address; localhost is always allowed)."""
    return [f"http://{url_host(a)}:{port}" for a in addresses]


NO_AUTH_WARNING = (
    "warning: MLflow's UI has no authentication: anyone who can reach this port can read, "
    "change and delete every run and model in {uri}. Use it on a trusted network, or put "
    "it behind a login (mlflow server --app-name basic-auth, or a reverse proxy with "
    "authentication: see the README)"
)
