"""deploy/nginx.conf in front of local web nodes, as an unprivileged nginx."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from devstack.net import LOCALHOST, REPO_ROOT, free_port
from devstack.processes import ManagedProcess, ProcessGroup, port_open

NGINX_SITE = REPO_ROOT / "deploy" / "nginx.conf"


def find_nginx() -> str | None:
    """$NGINX, else nginx on PATH, else Debian's /usr/sbin/nginx; None when absent."""
    explicit = os.environ.get("NGINX")
    if explicit:
        return explicit
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def render_nginx_site(upstream_ports: Sequence[int], listen_port: int, debug: bool) -> str:
    """deploy/nginx.conf as shipped, with the example upstream servers replaced by local web
    nodes and `listen 80` by a loopback port. `debug` adds an X-Upstream response header
    (which node answered) for tests that need to tell the nodes apart."""
    site = NGINX_SITE.read_text()
    servers = "\n".join(
        f"    server {LOCALHOST}:{port} max_fails=3 fail_timeout=10s;" for port in upstream_ports
    )
    site, count = re.subn(r"(?m)^    server 10\.0\.0\.\d+:5000[^\n]*\n(?:    server 10[^\n]*\n)*",
                          servers + "\n", site)  # fmt: skip
    if count != 1:
        raise RuntimeError("deploy/nginx.conf: upstream servers not found")
    site, count = re.subn(r"(?m)^    listen 80;", f"    listen {LOCALHOST}:{listen_port};", site)
    if count != 1:
        raise RuntimeError("deploy/nginx.conf: `listen 80;` not found")
    if debug:
        site = site.replace(
            "    client_max_body_size", "    add_header X-Upstream $upstream_addr always;\n"
            "    client_max_body_size", 1,
        )  # fmt: skip
    return site


class NginxProxy:
    """deploy/nginx.conf in front of local web nodes, as an unprivileged nginx: its own
    prefix, pid, logs and temp directories, listening on a free 127.0.0.1 port."""

    def __init__(
        self, upstream_ports: Sequence[int], directory: str | os.PathLike[str], debug: bool = True
    ) -> None:
        executable = find_nginx()
        if executable is None:
            raise RuntimeError("nginx is not installed")
        self.executable = executable
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://{LOCALHOST}:{self.port}"
        (self.dir / "escalation.conf").write_text(
            render_nginx_site(upstream_ports, self.port, debug)
        )
        temp = {name: self.dir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"""{user}daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {self.dir}/access.log;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {self.dir}/escalation.conf;
}}
"""
        )

    def command(self) -> list[str]:
        conf = str(self.dir / "nginx.conf")
        return [self.executable, "-p", str(self.dir), "-c", conf, "-e", str(self.dir / "error.log")]

    def check(self) -> None:
        """`nginx -t` on the rendered configuration; raises with nginx's words on failure."""
        result = subprocess.run(
            [*self.command(), "-t"], capture_output=True, text=True, timeout=30, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{result.stderr}")

    def start(self, group: ProcessGroup) -> ManagedProcess:
        self.check()
        return group.start(self.command(), {}, ready_check=port_open(self.port), name="nginx")


class _SourceAddressAdapter(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    """An HTTP client whose connections come from ``address`` (a loopback address such as
    127.0.3.1): to the balancer's ip_hash, a distinct client."""
    session = requests.Session()
    session.mount("http://", _SourceAddressAdapter(address))
    return session
