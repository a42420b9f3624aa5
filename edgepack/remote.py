"""Run a bundle on a real board over SSH: copy it, run its own ``run.py`` (selftest,
evaluation, bench) with the board's Python, bring the results back, clean up. Files travel
as tar streams over the ssh connection, so a board needs only ssh, sh, tar and Python.

The system OpenSSH client is used, so the user's ``~/.ssh/config``, keys and agent work as at
the terminal; host keys are checked (BatchMode: never a prompt, never a silent accept);
a board's address is read by :func:`parse_remote` alone (nothing ssh could take as an option,
no whitespace or shell metacharacters) and reaches ssh after ``--``; every remote argument
is quoted; connecting, copying and running have timeouts; the remote folder is removed
whatever happens.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepack import procs
from edgepack.errors import EdgepackError, UsageError

CONNECT_TIMEOUT = 10  # seconds for ssh to connect
NAME = r"[A-Za-z0-9_.][A-Za-z0-9_.-]*"  # a profile, user or host name: never a leading '-'
REMOTE = re.compile(rf"(?:(?P<profile>{NAME})=)?(?:(?P<user>{NAME})@)?(?P<host>{NAME})"
                    r"(?::(?P<port>[0-9]+))?")
ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@:=")
FORM = "write [PROFILE=][user@]host[:port]"


@dataclass(frozen=True)
class Remote:
    host: str
    user: str | None = None
    port: int | None = None
    profile: str | None = None  # PROFILE=user@host: only this profile's cells run there

    @property
    def name(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.host + \
            (f":{self.port}" if self.port else "")

    def __str__(self) -> str:
        """As the user wrote it: [PROFILE=][user@]host[:port]."""
        return (f"{self.profile}=" if self.profile else "") + self.name

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
                "-o", "ServerAliveInterval=15"]
        config = os.environ.get("EDGEPACK_SSH_CONFIG")  # else the user's ~/.ssh/config
        if config:
            opts = ["-F", config, *opts]
        return opts + ([port_flag, str(self.port)] if self.port else [])

    def ssh(self, command: str) -> list[str]:
        """The ssh command line: options, then ``--`` (nothing after it is an option, whatever
        it holds), then the destination and the remote command."""
        target = f"{self.user}@{self.host}" if self.user else self.host
        return ["ssh", *self._options("-p"), "--", target, command]


def parse_remote(text: str, where: str = "--remote",
                 error: type[EdgepackError] = UsageError) -> Remote:
    """``[PROFILE=][user@]host[:port]`` into its parts: the one place a board's address is
    read. ``error`` (naming ``where``) for anything else, and always for a value that ssh
    could take as an option (a part starting with '-') or that holds whitespace or a shell
    metacharacter, before any ssh starts."""
    why = _remote_problem(text)
    if why:
        raise error(f"{where} {text!r}: {why}; {FORM}")
    m = REMOTE.fullmatch(text)
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise error(f"{where} {text!r}: port {port} is out of range (1-65535)")
    return Remote(m["host"], m["user"], port, m["profile"])


def _remote_problem(text: str) -> str | None:
    if not text:
        return "is empty"
    if any(part.startswith("-") for part in re.split(r"[=@:]", text)):
        return "starts with '-', which ssh would read as an option"
    if any(c.isspace() for c in text):
        return "holds whitespace"
    bad = sorted(set(text) - ALLOWED)
    if bad:
        return (f"holds {', '.join(map(repr, bad))}: names are letters, digits, '.', '_' and "
                "'-' (no shell metacharacters)")
    if not REMOTE.fullmatch(text):
        return "is not a board address"
    return None


class BoardError(Exception):
    """The board could not be reached, or a step failed there: the message says which."""


class Session:
    """One bundle's visit to a board: a remote temporary folder, removed at the end."""

    def __init__(self, remote: Remote, timeout: float, log: Path | None = None) -> None:
        self.remote, self.timeout, self.log = remote, timeout, log
        self.folder: str | None = None

    def run(self, command: str, what: str, stdin: Path | None = None,
            stdout: Path | None = None) -> str:
        done = procs.run(self.remote.ssh(command), what=f"{what} on {self.remote.name}",
                         timeout=self.timeout, capture=True, log=self.log, stdin=stdin,
                         stdout=stdout)
        output = _strip_cmd(done.output)
        if not done.ok:
            lines = [ln for ln in output.splitlines() if ln.strip()]
            if done.returncode == 255:  # ssh's own failure: name the cause
                raise BoardError(f"cannot reach {self.remote.name}: "
                                 f"{lines[-1] if lines else done.reason}")
            raise BoardError(f"{what} failed on {self.remote.name}: "
                             f"{lines[-1] if lines else done.reason}")
        return output

    def copy(self, source: Path, name: str, what: str) -> None:
        """Copy a file or folder to ``<session folder>/<name>`` as a tar stream over ssh:
        a board needs only sh and tar (no scp, no SFTP server)."""
        with tempfile.TemporaryDirectory() as tmp:
            pack = Path(tmp) / "copy.tar"
            with tarfile.open(pack, "w") as tar:
                tar.add(source, arcname=name)
            self.run(f"tar -xf - -C {shlex.quote(self.folder)}", f"copying {what}",
                     stdin=pack)

    def fetch(self, name: str, local: Path) -> None:
        """Bring ``<session folder>/<name>`` back to ``local``."""
        self.run(f"cat {shlex.quote(self.folder + '/' + name)}", "copying results back",
                 stdout=local)

    def __enter__(self) -> Session:
        self.folder = self.run("mktemp -d /tmp/edgepack.XXXXXX", "creating a folder").strip()
        if not self.folder.startswith("/tmp/edgepack."):
            raise BoardError(f"unexpected folder from mktemp on {self.remote.name}: "
                             f"{self.folder!r}")
        return self

    def __exit__(self, *exc) -> None:
        if self.folder:
            try:
                self.run(f"rm -rf {shlex.quote(self.folder)}", "cleaning up")
            except BoardError:
                pass


def check_reachable(remote: Remote, timeout: float = 3 * CONNECT_TIMEOUT) -> None:
    """UsageError when the board cannot be reached (before a build does any work)."""
    session = Session(remote, timeout)
    try:
        session.run("true", "connecting")
    except BoardError as e:
        raise UsageError(f"--remote {remote.name}: {e}") from None


def check_board(remote: Remote, profiles: list, timeout: float = 3 * CONNECT_TIMEOUT) -> None:
    """UsageError when the board cannot be reached, or lacks a CPU feature that one of the
    ``profiles`` it serves claims (before a build does any work)."""
    session = Session(remote, timeout)
    try:
        found = identity(session)
    except BoardError as e:
        raise UsageError(f"--remote {remote.name}: {e}") from None
    for profile in profiles:
        why = missing_features(found, profile)
        if why:
            raise UsageError(f"--remote {remote.name}: {why}")


def missing_features(found: dict, profile) -> str | None:
    """Why a board (its identity) cannot stand for ``profile``: a CPU feature the profile
    claims that the board's /proc/cpuinfo does not list. None when it has them all."""
    have = set(found.get("features") or ())
    lacking = [f for f in profile.features if f not in have]
    if not lacking:
        return None
    shown = " ".join(sorted(have)) or "none (no Features line)"
    return (f"the board lacks CPU feature(s) {', '.join(lacking)} that profile "
            f"'{profile.name}' claims (its /proc/cpuinfo Features: {shown}); use a profile "
            "for this board, e.g. --remote OTHER_PROFILE=" + remote_name(found))


def remote_name(found: dict) -> str:
    return str(found.get("remote", "host"))


def _strip_cmd(output: str) -> str:
    return "\n".join(ln for ln in output.splitlines() if not ln.startswith("$ "))


IDENTITY = """
import json, platform, sys
model, features = "", None
try:
    model = open("/proc/device-tree/model").read().strip("\\0\\n ")
except OSError:
    pass
for line in open("/proc/cpuinfo"):
    key, _, value = line.partition(":")
    if key.strip() in ("model name", "Hardware", "Model") and not model:
        model = value.strip()
    if key.strip() == "Features" and features is None:
        features = value.split()
print(json.dumps({"model": model, "kernel": " ".join(platform.uname()[2:3]),
                  "machine": platform.machine(), "python": sys.version.split()[0],
                  "features": features or []}))
"""


def identity(session: Session) -> dict:
    """The board: its model, kernel, machine and Python, as it reports them."""
    out = session.run(f"python3 -c {shlex.quote(IDENTITY)}", "reading the board's identity")
    try:
        found = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BoardError(f"{session.remote.name}: unexpected answer from python3: "
                         f"{out.strip()[-200:]!r}") from None
    return {**found, "remote": session.remote.name}


def on_board(remote: Remote, bundle: Path, timeout: float, eval_file: Path | None = None,
             bench: list[str] | None = None, selftest: bool = True,
             log: Path | None = None) -> dict:
    """Run a bundle on a board; returns what happened there (``error`` when a step failed:
    the board's own message). Never raises for the board's faults."""
    result: dict = {"remote": remote.name}
    try:
        with Session(remote, timeout, log) as s, tempfile.TemporaryDirectory() as tmp:
            result["identity"] = identity(s)
            s.copy(bundle, "bundle", "the bundle")  # a fixed name: nothing of the archive's
            here = shlex.quote(f"{s.folder}/bundle")
            if selftest:
                out = s.run(f"cd {here} && python3 run.py selftest", "the selftest")
                result["selftest"] = out.strip().splitlines()[-1:] or [""]
            if eval_file is not None:
                s.copy(eval_file, "eval.npz", "the evaluation data")
                s.run(f"cd {here} && python3 run.py infer ../eval.npz -o ../outputs.npz",
                      "the evaluation")
                s.fetch("outputs.npz", Path(tmp) / "outputs.npz")
                result["outputs_file"] = _keep(Path(tmp) / "outputs.npz", log)
            if bench is not None:
                s.run(f"cd {here} && python3 run.py bench {shlex.join(bench)} "
                      "--json ../bench.json > /dev/null", "the benchmark")
                s.fetch("bench.json", Path(tmp) / "bench.json")
                result["bench"] = json.loads((Path(tmp) / "bench.json").read_text())
    except BoardError as e:
        result["error"] = str(e)
    return result


def _keep(path: Path, log: Path | None) -> str:
    """Move a fetched file out of the temporary folder (beside the log) and return it."""
    keep = Path(tempfile.mkdtemp(dir=log.parent if log else None)) / path.name
    path.replace(keep)
    return str(keep)
