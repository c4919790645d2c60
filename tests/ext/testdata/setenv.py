# setenv.py: a Python host that sets environment variables in os.environ
# (C's environ, through putenv) before it loads libverneuil.so.
#   python3 setenv.py SO DB SQLFILE [NAME=VALUE ...]
# Prints the result of PRAGMA verneuil_flush and verneuil_manifest_name.
# Exit 4: load_extension failed (the message is on stderr).
import os
import sqlite3
import sys

so, db, sqlfile = sys.argv[1:4]
for kv in sys.argv[4:]:
    k, v = kv.split("=", 1)
    if v == "":
        del os.environ[k]
    else:
        os.environ[k] = v
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
try:
    boot.load_extension(so)
except sqlite3.Error as e:
    print("load_extension: %s" % e, file=sys.stderr)
    sys.exit(4)
boot.enable_load_extension(False)
conn = sqlite3.connect("file:%s?vfs=verneuil" % db, uri=True, isolation_level=None)
with open(sqlfile) as f:
    conn.executescript(f.read())
print(conn.execute("PRAGMA verneuil_flush").fetchone()[0])
print(conn.execute("PRAGMA verneuil_manifest_name").fetchone()[0])
conn.close()
boot.close()
