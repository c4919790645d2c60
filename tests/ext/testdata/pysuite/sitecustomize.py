# sitecustomize.py of the Python sqlite3 suite run (tests/ext/pysuite_test.go,
# `make python-suite`, docs/TESTING.md). Every Python process of a run,
# the test runner and the child processes the suite starts (they inherit
# PYTHONPATH), imports it at start-up. Both runs, plain and verneuil, use
# it; the environment says what it does:
#
# VERNEUIL_PY_SUITE_EXT=SO     load libverneuil.so into a :memory: connection
#                              before the suite touches SQLite, so that the
#                              configuration's "make_default": true (from
#                              VERNEUIL_CONFIG) makes every connection the
#                              suite opens use the replicating VFS. A failed
#                              load ends the process with status 3: a run
#                              that silently used the plain VFS would
#                              compare nothing. (verneuil run only)
# VERNEUIL_PY_SUITE_FILES=DIR  sqlite3.connect(":memory:") opens a new file
#                              DIR/mem-PID-N.db instead, so that the tests
#                              written against in-memory databases write
#                              files (both runs of the "files" modes)
# VERNEUIL_PY_SUITE_PRAGMAS=P  every sqlite3.connect of a file database runs
#                              these pragmas first ("P1;P2": e.g.
#                              "page_size=512;journal_mode=wal"; both runs of
#                              the modes that set some); a failure is
#                              ignored (the test then runs with the file's
#                              settings)
# VERNEUIL_PY_SUITE_CHECK=DIR  with VERNEUIL_PY_SUITE_CTL=verneuilctl: check
#                              the replica of every SQLite database the
#                              suite deletes, just before os.unlink or
#                              os.remove removes it (verneuil run only; see
#                              _UnlinkCheck). One JSON line per check in
#                              DIR/unlink-checks.jsonl.
#
# It also runs the sitecustomize it shadows (Debian's, which installs
# apport's exception hook when apport is there).
import os
import sqlite3
import sys

SQLITE_MAGIC = b"SQLite format 3\x00"

# sqlite3.connect before any wrapping: the harness's own connections.
_real_connect = sqlite3.connect


def _chain_shadowed_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        path = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(path):
            with open(path, "rb") as f:
                code = compile(f.read(), path, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": path})
            return


def _load_verneuil(ext):
    boot = _real_connect(":memory:")
    try:
        boot.enable_load_extension(True)
        boot.load_extension(ext)
        boot.enable_load_extension(False)
    except Exception as e:
        sys.stderr.write("python-suite: loading %s failed: %s\n" % (ext, e))
        sys.stderr.flush()
        os._exit(3)
    finally:
        boot.close()


def _wrap_connect(files, pragmas):
    import itertools

    seq = itertools.count()
    pragmas = ["PRAGMA " + p.strip() for p in (pragmas or "").split(";") if p.strip()]

    def connect(database, *args, **kwargs):
        if files and isinstance(database, (str, bytes)) and database in (":memory:", b":memory:"):
            database = os.path.join(files, "mem-%d-%d.db" % (os.getpid(), next(seq)))
        con = _real_connect(database, *args, **kwargs)
        if database not in (":memory:", b":memory:", "", b""):
            for pragma in pragmas:
                try:
                    sqlite3.Connection.execute(con, pragma).close()
                except sqlite3.Error:
                    pass
        return con

    connect.__doc__ = _real_connect.__doc__
    sqlite3.connect = connect
    sqlite3.dbapi2.connect = connect


def _current_test():
    """The id of the unittest test whose code is on this stack, or ""."""
    f = sys._getframe(1)
    while f is not None:
        obj = f.f_locals.get("self")
        if obj is not None and hasattr(obj, "_testMethodName") and hasattr(obj, "id"):
            try:
                return obj.id()
            except Exception:
                return ""
        f = f.f_back
    return ""


class _UnlinkCheck:
    """Checks a database's replica before the suite deletes the file.

    On a connection of its own (through the default VFS, i.e. verneuil):
    for a WAL database, wal_checkpoint(TRUNCATE) so that the file holds
    the state the replica must equal; BEGIN IMMEDIATE, so that the file
    holds a committed state and nobody writes; PRAGMA verneuil_flush; then
    `verneuilctl restore DB --out COPY` and a byte comparison with the
    file. A database that is busy (another connection holds a write lock)
    is recorded as skipped. A copy that differs is kept, with the file it
    should equal beside it (COPY.source).
    """

    def __init__(self, outdir, ctl):
        import itertools

        self.outdir = outdir
        self.ctl = ctl
        self.log = os.path.join(outdir, "unlink-checks.jsonl")
        self.seq = itertools.count()
        self.busy = False
        self.real_unlink = os.unlink
        self.real_remove = os.remove

    def install(self):
        # shutil decides at import whether its rmtree may use dir_fd: import
        # it first, and list the wrappers (which pass dir_fd on) as
        # supporting it, so that nothing else changes behaviour.
        import shutil  # noqa: F401

        os.unlink = self._wrap(self.real_unlink)
        os.remove = self._wrap(self.real_remove)
        os.supports_dir_fd.add(os.unlink)
        os.supports_dir_fd.add(os.remove)

    def _wrap(self, real):
        def wrapper(path, *, dir_fd=None):
            if dir_fd is None and not self.busy:
                self.busy = True
                try:
                    self.check(path)
                except BaseException as e:
                    self.record({"path": repr(path), "result": "error", "error": repr(e)})
                finally:
                    self.busy = False
            return real(path, dir_fd=dir_fd)

        wrapper.__name__ = real.__name__
        wrapper.__doc__ = real.__doc__
        return wrapper

    def record(self, entry):
        import json

        entry["pid"] = os.getpid()
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def check(self, path):
        if isinstance(path, int):
            return
        fs = os.path.abspath(os.fsencode(os.fspath(path)))
        try:
            with open(fs, "rb") as f:
                if f.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                    return
        except OSError:
            return
        import urllib.parse

        entry = {"path": os.fsdecode(fs), "test": _current_test()}
        uri = "file:" + urllib.parse.quote(fs) + "?mode=rw"
        con = _real_connect(uri, uri=True, timeout=0, isolation_level=None)
        try:
            self._check(con, fs, entry)
        finally:
            con.close()
        self.record(entry)

    def _check(self, con, fs, entry):
        import filecmp
        import subprocess
        import time

        t0 = time.monotonic()
        try:
            mode = con.execute("PRAGMA journal_mode").fetchone()[0]
            entry["journal_mode"] = mode
            if mode == "wal":
                busy = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                if busy:
                    entry.update(result="skipped", error="checkpoint busy")
                    return
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            entry.update(result="skipped", error=str(e))
            return
        try:
            if mode == "wal" and os.path.getsize(fs + b"-wal") > 0:
                entry.update(result="skipped", error="a commit after the checkpoint")
                return
            t1 = time.monotonic()
            row = con.execute("PRAGMA verneuil_flush").fetchone()
            entry["flush"] = row[0] if row else None
            entry["flush_seconds"] = round(time.monotonic() - t1, 3)
            row = con.execute("PRAGMA verneuil_manifest_name").fetchone()
            entry["key"] = row[0] if row else None
            out = os.path.join(self.outdir, "restore-%d-%d.db" % (os.getpid(), next(self.seq)))
            proc = subprocess.run(
                [self.ctl, "restore", fs, "--out", out, "--force"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=120,
            )
            entry["size"] = os.stat(fs).st_size
            if proc.returncode != 0:
                entry.update(result="restore-failed", exit=proc.returncode,
                             stderr=proc.stderr.decode(errors="replace")[-2000:])
            elif filecmp.cmp(fs, out, shallow=False):
                entry["result"] = "identical"
                self.real_unlink(out)
            else:
                entry.update(result="different", restored=out, source=out + ".source")
                with open(fs, "rb") as src, open(out + ".source", "wb") as dst:
                    dst.write(src.read())
        finally:
            con.execute("ROLLBACK")
            entry["seconds"] = round(time.monotonic() - t0, 3)


try:
    _chain_shadowed_sitecustomize()
except Exception as e:  # reported as site.py reports a failing sitecustomize
    sys.stderr.write("python-suite: the shadowed sitecustomize failed: %r\n" % (e,))

if os.environ.get("VERNEUIL_PY_SUITE_EXT"):
    _load_verneuil(os.environ["VERNEUIL_PY_SUITE_EXT"])
if os.environ.get("VERNEUIL_PY_SUITE_FILES") or os.environ.get("VERNEUIL_PY_SUITE_PRAGMAS"):
    _wrap_connect(os.environ.get("VERNEUIL_PY_SUITE_FILES"), os.environ.get("VERNEUIL_PY_SUITE_PRAGMAS"))
if os.environ.get("VERNEUIL_PY_SUITE_CHECK") and os.environ.get("VERNEUIL_PY_SUITE_CTL"):
    _UnlinkCheck(os.environ["VERNEUIL_PY_SUITE_CHECK"], os.environ["VERNEUIL_PY_SUITE_CTL"]).install()
