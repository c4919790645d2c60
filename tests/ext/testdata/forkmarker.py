# forkmarker.py SO DB MARKER: the parent loads the extension and writes DB
# through verneuil; a child forked without exec (capture is off there)
# writes DB through a connection of its own, and another child through the
# connection inherited from the parent. After each child, prints whether
# the rescan marker MARKER exists, then removes it.
import os
import sqlite3
import sys

so, path, marker = sys.argv[1], sys.argv[2], sys.argv[3]
loader = sqlite3.connect(":memory:")
loader.enable_load_extension(True)
loader.load_extension(so)
db = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True)
db.execute("CREATE TABLE t(a)")
db.commit()
print("before", os.path.exists(marker))


def child(own):
    pid = os.fork()
    if pid == 0:
        c = sqlite3.connect("file:%s?vfs=verneuil" % path, uri=True) if own else db
        c.execute("INSERT INTO t VALUES(randomblob(1000))")
        c.commit()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        sys.exit("child failed: %d" % status)
    print("own" if own else "inherited", os.path.exists(marker))
    if os.path.exists(marker):
        os.unlink(marker)


child(True)
child(False)
print(db.execute("SELECT count(*) FROM t").fetchone()[0])
