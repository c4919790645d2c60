# host.py: Python's sqlite3 module as a host of libverneuil.so.
#   python3 host.py SO DB SQLFILE MODE      MODE: uri | default | check
# Prints the result of PRAGMA verneuil_flush and verneuil_manifest_name.
# Exit 3: this Python's sqlite3 cannot load extensions.
# Exit 4: load_extension failed (the message is on stderr).
import sqlite3
import sys

so, db, sqlfile, mode = sys.argv[1:5]
boot = sqlite3.connect(":memory:")
if not hasattr(boot, "enable_load_extension"):
    print("this Python's sqlite3 module is built without extension loading", file=sys.stderr)
    sys.exit(3)
if mode == "check":
    sys.exit(0)
boot.enable_load_extension(True)
try:
    boot.load_extension(so)
except sqlite3.Error as e:
    print("load_extension: %s" % e, file=sys.stderr)
    sys.exit(4)
boot.enable_load_extension(False)
if mode == "uri":
    conn = sqlite3.connect("file:%s?vfs=verneuil" % db, uri=True, isolation_level=None)
else:
    conn = sqlite3.connect(db, isolation_level=None)
with open(sqlfile) as f:
    conn.executescript(f.read())
print(conn.execute("PRAGMA verneuil_flush").fetchone()[0])
print(conn.execute("PRAGMA verneuil_manifest_name").fetchone()[0])
conn.close()
boot.close()
