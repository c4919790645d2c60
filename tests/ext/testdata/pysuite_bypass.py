# pysuite_bypass.py DIR: databases whose replicas the python-suite checks
# must find wrong (tests/ext/pysuite_adversary_test.go). Run with
# testdata/pysuite on PYTHONPATH and the verneuil run's environment.
#   DIR/files/kept.db      written through verneuil, left: identical
#   DIR/files/patched.db   written, then 4 bytes changed outside SQLite
#                          (mtime restored), left: differs
#   DIR/files/bypass.db    written through unix only: no replica
#   DIR/deleted-ok.db      written, deleted: identical
#   DIR/deleted-bad.db     written, changed outside SQLite, deleted: differs
import os
import sqlite3
import sys

d = sys.argv[1]


def write(path, vfs=None):
    if vfs:
        con = sqlite3.connect("file:%s?vfs=%s" % (path, vfs), uri=True)
    else:
        con = sqlite3.connect(path)
    con.execute("CREATE TABLE t(x)")
    con.executemany("INSERT INTO t VALUES (?)", [("row %d" % i,) for i in range(100)])
    con.commit()
    con.close()


def patch(path):
    st = os.stat(path)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\xde\xad\xbe\xef", st.st_size - 8)
    finally:
        os.close(fd)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


files = os.path.join(d, "files")
write(os.path.join(files, "kept.db"))
write(os.path.join(files, "patched.db"))
patch(os.path.join(files, "patched.db"))
write(os.path.join(files, "bypass.db"), vfs="unix")
write(os.path.join(d, "deleted-ok.db"))
os.unlink(os.path.join(d, "deleted-ok.db"))
write(os.path.join(d, "deleted-bad.db"))
patch(os.path.join(d, "deleted-bad.db"))
os.unlink(os.path.join(d, "deleted-bad.db"))
print("done")
