# fork_wal.py SO DB: fork.py in WAL mode, with commits the VFS queues (no Go
# call) before the fork and after it: a child forked without exec writes
# through the VFS (it passes through there), then the parent writes,
# flushes and closes (the close checkpoints the WAL into the file). Prints
# the flush result and the row count.
import os
import sqlite3
import sys

so, path = sys.argv[1], sys.argv[2]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(so)
db = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t(a)")
for i in range(200):
    db.execute("INSERT INTO t VALUES(?)", (i,))
pid = os.fork()
if pid == 0:
    child = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True, isolation_level=None)
    for i in range(50):
        child.execute("INSERT INTO t VALUES(randomblob(3000))")
    child.close()
    os._exit(0)
_, status = os.waitpid(pid, 0)
if status != 0:
    sys.exit("child failed: %d" % status)
for i in range(200):
    db.execute("INSERT INTO t VALUES(?)", (i,))
print(db.execute("PRAGMA verneuil_flush").fetchone()[0])
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
db.close()
