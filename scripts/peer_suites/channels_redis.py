"""Fetch channels_redis' test suite and run it against our layer: see scripts/peer-suite-channels-redis."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TEST_FILES = ["tests/test_core.py", "tests/test_pubsub.py", "tests/test_sentinel.py",
              "tests/test_pubsub_sentinel.py"]
# channels_redis' test requirements that wsviews' test extra does not bring.
TEST_REQUIREMENTS = {"async_timeout": "async-timeout"}
SENTINEL_MASTER = "sentinel"
SENTINEL_PASSWORD = "channels_redis"  # what their sentinel tests log in with
RUN_TIMEOUT = 900


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                   check=True, timeout=300)


def fetch_suite(workdir: Path, sdist: Path | None) -> Path:
    """Return the unpacked sdist of the installed channels_redis, downloading it if need be."""
    version = importlib.metadata.version("channels_redis")
    if sdist is None:
        pip("download", "--no-binary", ":all:", "--no-deps",
            f"channels_redis=={version}", "-d", str(workdir))
        found = sorted(workdir.glob(f"channels_redis-{version}.tar.gz"))
        if not found:
            raise SystemExit(f"pip did not download channels_redis-{version}.tar.gz")
        sdist = found[0]
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    suite = workdir / f"channels_redis-{version}"
    if not (suite / "tests" / "test_core.py").exists():
        raise SystemExit(f"{sdist} has no tests/test_core.py: is it channels_redis {version}?")
    return suite


def test_requirements(workdir: Path) -> Path:
    target = workdir / "deps"
    missing = [pkg for module, pkg in TEST_REQUIREMENTS.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        pip("install", "--target", str(target), *missing)
    return target


class Servers:
    """A redis-server and a sentinel watching it, on free ports, stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.redis_port, self.sentinel_port = free_port(), free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        conf = workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"requirepass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {self.redis_port} 1\n"
        )
        quiet = subprocess.DEVNULL
        self.procs = [
            subprocess.Popen([binary, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                             stdout=quiet, stderr=quiet),
        ]
        self._wait(self.redis_port, ["PING"], b"+PONG")
        self.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"],
                                           stdout=quiet, stderr=quiet))
        self._wait(self.sentinel_port, ["AUTH", SENTINEL_PASSWORD, "SENTINEL",
                                        "get-master-addr-by-name", SENTINEL_MASTER], b"127.0.0.1")

    def _wait(self, port: int, command: list[str], expected: bytes) -> None:
        """Poll until the server answers ``command`` with ``expected`` (it has no readiness event)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                    if command[0] == "AUTH":
                        s.sendall(_resp(command[:2]))
                        s.recv(100)
                        command = command[2:]
                    s.sendall(_resp(command))
                    if expected in s.recv(1000):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"redis-server on port {port} did not come up")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait(10)


def _resp(args: list[str]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, help="where to unpack (default: a temporary dir)")
    parser.add_argument("--sdist", type=Path, help="a channels_redis sdist already downloaded")
    args, pytest_args = parser.parse_known_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="peer-channels-redis-"))
    workdir.mkdir(parents=True, exist_ok=True)
    suite = fetch_suite(workdir, args.sdist)
    deps = test_requirements(workdir)
    servers = Servers(workdir)
    try:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=os.pathsep.join([str(HERE), str(deps), str(ROOT / "src")]),
            WSVIEWS_PEER_REDIS=f"redis://127.0.0.1:{servers.redis_port}",
            WSVIEWS_PEER_SENTINEL=f"127.0.0.1:{servers.sentinel_port}",
        )
        print(f"channels_redis {suite.name.rpartition('-')[2]} tests in {suite}", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "channels_redis_plugin", "-p", "no:cacheprovider",
             "-q", "-rN", *TEST_FILES, *pytest_args],
            cwd=suite, env=env, timeout=RUN_TIMEOUT, check=False,
        )
    finally:
        servers.stop()
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
