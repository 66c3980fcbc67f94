"""A real PostgreSQL server for the ledger tests (Debian's `postgresql` package, `.ci/run` installs it).

    with Postgres() as pg:          # initdb in a temp dir, started on 127.0.0.1:<free port>
        pg.url                      # postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
        pg.query("SELECT 1")        # rows as lists of strings (psql -At)
        pg.stop(); pg.start()       # the same data directory and port

PostgreSQL refuses to run as root: when the tests run as root the server and psql run as the
`postgres` user (`runuser`), and the temp dir is theirs. Trust authentication, loopback only.
"""

import glob
import os
import shutil
import subprocess
import tempfile

from support.harness import free_port, wait_until


def bin_dir():
    """The newest /usr/lib/postgresql/N/bin, or None when PostgreSQL is not installed."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs else None


class Postgres:
    def __init__(self):
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
        self.dir = tempfile.mkdtemp(prefix="llm-cost-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.url = "postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable" % self.port
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.proc = None
        subprocess.run(self.as_user + [os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.as_user + [os.path.join(self.bin, "postgres"), "-D", self.data, "-h", "127.0.0.1",
                            "-p", str(self.port), "-k", self.dir, "-c", "fsync=off"],
            stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited %s:\n%s" % (self.proc.returncode, self.log_text()[-2000:]))
            return subprocess.run(self.as_user + [os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1",
                                                  "-p", str(self.port)], capture_output=True).returncode == 0
        wait_until(ready, 30, interval=0.1, what="postgres ready")

    def stop(self):
        """Fast shutdown (connections are closed, nothing committed is lost); waits until it is down."""
        if self.proc is not None and self.proc.poll() is None:
            # pg_ctl signals the postmaster itself (a signal to `runuser` would not reach it).
            subprocess.run(self.as_user + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "stop", "-m", "fast",
                                           "-w", "-t", "30"], capture_output=True, timeout=60)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    def query(self, sql):
        out = subprocess.run(self.as_user + ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                                             "-d", "postgres", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                             capture_output=True, timeout=30)
        if out.returncode != 0:
            raise RuntimeError("psql failed: %s" % out.stderr.decode(errors="replace"))
        return [line.split("\t") for line in out.stdout.decode().splitlines() if line]

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":  # a quick manual check
    with Postgres() as pg:
        print(pg.url, pg.query("SELECT version()")[0][0])
