"""A believable board on loopback: Debian's OpenSSH server on 127.0.0.1 with a throwaway
host key and user key, whose ``python3`` is the arm64 sysroot's Python under qemu (a
Cortex-A72), so that --remote really runs bundles on an (emulated) aarch64 CPU."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from edgepack.cpus import Guest, guest_for
from edgepack.emulation import QEMU, SITE, SYSROOT, _cpu_view


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)


USER = "edgepackboard"  # a plain account with /bin/sh: no rc file rewrites its PATH


def _user() -> None:
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
    # useradd leaves the password "!" (locked), and sshd refuses locked accounts even for
    # key logins; "*" means "no password", which still allows keys.
    subprocess.run(["usermod", "-p", "*", USER], check=True)


@contextmanager
def loopback_board(runtime: bool = True):
    """Yields the environment (EDGEPACK_SSH_CONFIG) under which ``--remote board`` reaches
    it; ``runtime=False`` gives a board whose Python has no runtime installed.

    Its files live in a fresh folder under /tmp, not pytest's (0700, root's): sshd reads
    authorized_keys as the board's user, and its python3 runs as that user."""
    tmp = Path(tempfile.mkdtemp(prefix="edgepack-board-", dir="/tmp"))
    tmp.chmod(0o755)
    _user()
    port = free_port()
    _keygen(tmp / "host_key")
    _keygen(tmp / "user_key")
    shutil.copyfile(tmp / "user_key.pub", tmp / "authorized_keys")
    bin_dir = tmp / "board_bin"
    bin_dir.mkdir()
    root = tmp / "sysroot"  # the board's own copy (hard links), readable by its user
    if subprocess.run(["cp", "-al", str(SYSROOT.root), str(root)]).returncode != 0:
        shutil.copytree(SYSROOT.root, root, symlinks=True)
    guest = guest_for("Cortex-A72")
    _cpu_view(root, guest)
    (bin_dir / "python3").write_text(
        "#!/bin/sh\n"
        f"export PYTHONPATH={SITE if runtime else ''} PYTHONNOUSERSITE=1\n"
        f'exec {QEMU} -cpu {guest.qemu} -L {root} {root}/usr/bin/python3.11 "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    (tmp / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPidFile {tmp / 'sshd.pid'}\n"
        f"AllowUsers {USER}\nPermitRootLogin no\nPasswordAuthentication no\nUsePAM no\n"
        "StrictModes no\n"
        f"SetEnv PATH={bin_dir}:/usr/bin:/bin\n")
    host_pub = (tmp / "host_key.pub").read_text().split()
    (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (tmp / "ssh_config").write_text(
        f"Host board\n  HostName 127.0.0.1\n  Port {port}\n  User {USER}\n"
        f"  IdentityFile {tmp / 'user_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {tmp / 'known_hosts'}\n  StrictHostKeyChecking yes\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(tmp / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "sshd.log", "w"))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield {"EDGEPACK_SSH_CONFIG": str(tmp / "ssh_config"), "port": str(port)}
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def clean_env(board: dict) -> dict:
    return {k: v for k, v in board.items() if k.isupper()}



def install_offline_and_selftest(bundle: Path, cpu: Guest, work: Path) -> str:
    """Install ``bundle``'s requirements from its vendored wheels (``pip --no-index``) into a
    clean arm64 CPython (Debian's, nothing installed) on the emulated ``cpu``, then run its
    selftest there; pip itself is brought in from here, as a board's python3-pip would be.
    Returns the selftest's output; AssertionError with pip's or the selftest's tail."""
    import pip

    from edgepack import procs

    tools, site = work / "pip", work / "site"
    shutil.copytree(Path(pip.__file__).parent, tools / "pip")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONNOUSERSITE": "1"}
    install = procs.run([*SYSROOT.command(cpu), "-m", "pip", "install", "--no-index",
                         "--disable-pip-version-check", "--find-links", "wheels", "-r",
                         "requirements.txt", "--target", str(site)],
                        what="pip install", timeout=900, capture=True, cwd=bundle,
                        env={**env, "PYTHONPATH": str(tools)})
    assert install.ok, install.output[-2000:]
    selftest = procs.run([*SYSROOT.command(cpu), "run.py", "selftest"], what="selftest",
                         timeout=900, capture=True, cwd=bundle,
                         env={**env, "PYTHONPATH": str(site)})
    assert selftest.ok and "selftest passed" in selftest.output, selftest.output[-2000:]
    return selftest.output
