"""A throwaway single-node SLURM cluster for tests: munged + slurmctld + slurmd on this
machine, every file (config, key, sockets, state, logs, pid files) in one directory.

Debian's `slurm-wlm` and `munge` provide the daemons (`.ci/run` installs them). What makes
it start in about a second in a container without systemd or cgroups:

- ProctrackType=proctrack/linuxproc, TaskPlugin=task/affinity (no cgroup plugins);
- SelectType=select/cons_tres with CR_Core: CPUs are allocated, memory is not consumed,
  and SlurmdParameters=config_overrides lets the node advertise more memory than it has,
  so the jobs of profiles/slurm (train: --mem 64000) are submitted unchanged;
- no slurmdbd: `sacct` only says "accounting storage is disabled", so the Snakemake
  plugin must query `squeue`, which keeps finished jobs for MinJobAge=300 s.

Client commands find the cluster through SLURM_CONF (see `SlurmCluster.env`). The SLURM
plugin's in-job executor drops every SLURM_* variable except the job's identity before it
calls `srun`, so a cluster whose slurm.conf is not at the default path needs `srun` on PATH
to be a wrapper that sets SLURM_CONF; a real cluster has /etc/slurm/slurm.conf (or runs
configless) and needs nothing of the kind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "sinfo", "scancel")


def unavailable() -> str | None:
    """Why a test cluster cannot run here (missing programs, not root), or None."""
    missing = [p for p in DAEMONS + CLIENTS if shutil.which(p) is None]
    if missing:
        return f"SLURM/munge programs not found: {', '.join(missing)} (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd must run as root to start jobs"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """This machine as slurmd sees it (`slurmd -C`: NodeName=<host> CPUs=... RealMemory=...)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    return " ".join(f for f in line.split() if not f.startswith("RealMemory="))


@dataclass
class SlurmCluster:
    """munged, slurmctld and slurmd in the foreground, as children of this process.

    `start()` returns once the node is idle; `stop()` cancels whatever is left and ends the
    three daemons by PID. `memory_mb` is what the node advertises (not enforced).
    """

    root: Path
    memory_mb: int = 128_000
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def host(self) -> str:
        # slurmctld and slurmd recognise themselves by the short host name.
        return socket.gethostname().split(".")[0]

    @property
    def cpus(self) -> int:
        """CPUs of the node (what `slurmd -C` reports)."""
        fields = dict(f.split("=", 1) for f in _node_line().split())
        return int(fields["CPUs"])

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment in which SLURM commands (and Snakemake's plugin) reach this cluster."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        for key in [k for k in env if k.startswith(("SLURM_JOB", "SBATCH_", "SRUN_"))]:
            del env[key]  # never inherit the job context of an enclosing allocation
        return env

    def _write_files(self) -> None:
        r = self.root
        for sub in ("state", "spool", "bin", "log"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        key = r / "munge.key"
        key.write_bytes(os.urandom(128))  # munged wants >= 32 bytes, owned by its user, mode 0600
        key.chmod(0o600)
        self.conf.write_text(
            f"""# Single-node test cluster written by tests/slurm_cluster.py
ClusterName=asnetci
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r / 'munge.socket'}
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'slurmctld.pid'}
SlurmdPidFile={r / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
{_node_line()} RealMemory={self.memory_mb} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
"""
        )
        srun = r / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}"; export SLURM_CONF\nexec {shutil.which("srun")} "$@"\n')
        srun.chmod(0o755)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        out = open(self.root / "log" / f"{name}.out", "w")  # noqa: SIM115 (kept by the child)
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    def _wait(self, what: str, ready, timeout: float) -> None:  # noqa: ANN001 (a predicate)
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"no {what} after {timeout:.0f} s"
                raise RuntimeError(f"test SLURM cluster did not start: {why}\n{self.logs()}")
            time.sleep(0.2)

    def start(self, timeout: float = 60) -> None:
        """Write the files, start the daemons and wait until the node accepts jobs."""
        self._write_files()
        r = self.root
        # --force: munged refuses root and a key it did not create without it.
        self._spawn("munged", ["munged", "--foreground", "--force", f"--socket={r / 'munge.socket'}",
                               f"--key-file={r / 'munge.key'}", f"--pid-file={r / 'munged.pid'}",
                               f"--log-file={r / 'log' / 'munged.log'}", f"--seed-file={r / 'munged.seed'}"])
        self._wait("munge socket", (r / "munge.socket").exists, timeout)
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])

        def idle() -> bool:
            out = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=self.env(), capture_output=True,
                                 text=True, timeout=30)
            return out.returncode == 0 and out.stdout.strip() == "idle"

        self._wait("idle node", idle, timeout)

    def logs(self, tail: int = 15) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel jobs still queued or running here, then end slurmd, slurmctld, munged by PID."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--quiet", "--full", f"--user={os.getuid()}"], env=self.env(),
                           capture_output=True, timeout=30, check=False)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def ci_profile(self, path: Path) -> Path:
        """A Snakemake profile to layer over profiles/slurm for this cluster only."""
        path.mkdir(parents=True, exist_ok=True)
        settings = {
            # No slurmdbd: sacct fails and the plugin would wait forever; squeue sees
            # finished jobs for MinJobAge (300 s). A real cluster keeps the default (sacct).
            "slurm-status-command": "squeue",
            # First status query after 1 s, not 40: the test's jobs take seconds.
            "slurm-init-seconds-before-status-checks": 1,
            # The test reads every job's SLURM log; by default successful ones are deleted.
            "slurm-keep-successful-logs": True,
            # "All cores" jobs (evaluate) get the node's CPUs, not the 16 of profiles/slurm.
            "cores": self.cpus,
            # A failure must fail the test at once, not be resubmitted.
            "retries": 0,
        }
        (path / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        return path
