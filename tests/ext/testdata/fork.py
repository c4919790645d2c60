# fork.py SO DB: a child forked without exec writes through the VFS (which
# passes through there: the Go runtime does not survive fork), then the
# parent writes and flushes. Prints the flush result and the row count.
import os
import sqlite3
import sys

so, path = sys.argv[1], sys.argv[2]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(so)
db = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True)
db.execute("CREATE TABLE t(a)")
db.commit()
pid = os.fork()
if pid == 0:
    child = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True)
    child.execute("INSERT INTO t VALUES(randomblob(200000))")
    child.commit()
    child.close()
    os._exit(0)
_, status = os.waitpid(pid, 0)
if status != 0:
    sys.exit("child failed: %d" % status)
db.execute("INSERT INTO t VALUES(2)")
db.commit()
print(db.execute("PRAGMA verneuil_flush").fetchone()[0])
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
