# A snapshot connection open in a process that forks without exec.
# argv: libverneuil.so, replica URI, query touching every chunk, mode.
# Prints one line per step; a child guards itself with alarm(20) (SIGALRM
# kills it if it hangs), so a hang shows as a signal, not a stuck test.
import os, signal, sqlite3, sys

so, uri, query = sys.argv[1], sys.argv[2], sys.argv[3]
boot = sqlite3.connect(":memory:")
boot.enable_load_extension(True)
boot.load_extension(so)
con = sqlite3.connect(uri, uri=True)
# The parent reads one small row: most chunks are not cached anywhere.
con.execute("SELECT length(v) FROM t WHERE rowid = 1").fetchone()

def child(mode):
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        try:
            if mode == "idle":
                print("idle ok", flush=True)
            elif mode == "inherited":
                r = con.execute(query).fetchone()
                print("inherited result", r, flush=True)
            elif mode == "cached":
                # The row the parent read: its chunk is in memory.
                r = con.execute("SELECT length(v) FROM t WHERE rowid = 1").fetchone()
                print("cached result", r, flush=True)
            elif mode == "close":
                # Closing the inherited connection releases it without Go;
                # then a normal exit (atexit, finalizers).
                con.close()
                print("close ok", flush=True)
                sys.exit(0)
            elif mode == "new":
                c2 = sqlite3.connect(uri, uri=True)
                r = c2.execute(query).fetchone()
                print("new result", r, flush=True)
        except sqlite3.Error as e:
            print(mode, "error:", e, flush=True)
        sys.stdout.flush()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        print(mode, "child killed by signal", os.WTERMSIG(status), flush=True)
    else:
        print(mode, "child exit", os.WEXITSTATUS(status), flush=True)

for mode in sys.argv[4].split(","):
    child(mode)
# The parent keeps working: a refresh (a call into Go) and every chunk.
print("parent refresh", con.execute("PRAGMA verneuil_snapshot_refresh").fetchone()[0] is not None, flush=True)
print("parent result", con.execute(query).fetchone(), flush=True)
