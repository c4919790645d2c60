package verneuil_test

// Several processes writing one database in turn through the VFS, each
// with its own replicator on the same spool and target: the captures
// continue from each other's commits (the spool's chain file), and the
// replica must stay exact through a kill -9 of one writer and through
// writers that bypass the VFS.

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/restore"
	"github.com/verneuil-go/verneuil/internal/testutil"
	"github.com/verneuil-go/verneuil/internal/tracker"
)

// envContendWriter, when set, makes the test binary a writer process
// (contendWriterMain) instead of running tests.
const envContendWriter = "VERNEUIL_TEST_CONTEND_WRITER"

func init() {
	if spec := os.Getenv(envContendWriter); spec != "" {
		os.Exit(contendWriterMain(spec))
	}
}

// contendSpec is what a writer process does.
type contendSpec struct {
	Config json.RawMessage // replicator configuration (VERNEUIL_CONFIG JSON)
	Path   string
	Table  string
	Rows   int
	Bypass bool // write through the unix VFS, with no replicator
	// Gate: open the database, print "ready", then wait for a line on
	// stdin before the first insert (startWriters starts several at once).
	Gate bool
}

// contendWriterMain inserts spec.Rows rows into spec.Table, one
// transaction each, printing "commit N" after each, then "continued N"
// (commits captured by continuing from other processes' records).
func contendWriterMain(raw string) int {
	var spec contendSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "writer spec:", err)
		return 2
	}
	ctx := context.Background()
	vfs := "unix"
	if !spec.Bypass {
		cfg, err := config.Parse(spec.Config)
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer config:", err)
			return 2
		}
		r, err := replicator.Start(ctx, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, "writer replicator:", err)
			return 2
		}
		defer r.Close(ctx)
		vfs = "verneuil"
	}
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?vfs=%s&_journal_mode=DELETE&_sync=OFF&_busy_timeout=10000", spec.Path, vfs))
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer open:", err)
		return 2
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	out := bufio.NewWriter(os.Stdout)
	if spec.Gate {
		if err := db.Ping(); err != nil {
			fmt.Fprintln(os.Stderr, "writer open:", err)
			return 2
		}
		fmt.Fprintln(out, "ready")
		out.Flush()
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "writer gate:", err)
			return 2
		}
	}
	for i := range spec.Rows {
		if _, err := db.Exec("INSERT INTO " + spec.Table + "(v) VALUES(randomblob(1500))"); err != nil {
			fmt.Fprintln(os.Stderr, "writer insert:", err)
			return 1
		}
		fmt.Fprintf(out, "commit %d\n", i+1)
		out.Flush()
		time.Sleep(time.Millisecond) // let the others in: commits alternate
	}
	if err := db.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "writer close:", err)
		return 1
	}
	continued, missed := tracker.ChainCounts()
	fmt.Fprintf(out, "continued %d\nmissed %d\n", continued, missed)
	out.Flush()
	return 0
}

// contendWriter is a running writer process.
type contendWriter struct {
	cmd       *exec.Cmd
	mu        sync.Mutex
	commits   int
	continued int
	missed    int
	ready     chan struct{} // closed at the writer's "ready" (Gate)
	gate      io.WriteCloser
	done      chan error
}

func (w *contendWriter) progress() (commits, continued int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.commits, w.continued
}

func (w *contendWriter) misses() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.missed
}

// startWriter starts a writer process.
func startWriter(t *testing.T, e *env, path, table string, rows int, bypass bool) *contendWriter {
	t.Helper()
	return startWriterSpec(t, e, contendSpec{Path: path, Table: table, Rows: rows, Bypass: bypass})
}

// startWriters starts one writer process per table, each inserting rows,
// and lets them insert only once every one of them has opened the
// database: their commits overlap however slowly a loaded machine starts
// processes (started one after the other, the first could finish before
// the next one's first commit, and no capture continue from another
// process's commit).
func startWriters(t *testing.T, e *env, path string, rows int, tables ...string) []*contendWriter {
	t.Helper()
	var ws []*contendWriter
	for _, tb := range tables {
		ws = append(ws, startWriterSpec(t, e, contendSpec{Path: path, Table: tb, Rows: rows, Gate: true}))
	}
	for _, w := range ws {
		select {
		case <-w.ready:
		case err := <-w.done:
			t.Fatalf("writer exited before it was ready: %v", err)
		case <-time.After(5 * time.Minute):
			t.Fatal("writer never ready")
		}
	}
	for _, w := range ws {
		if _, err := io.WriteString(w.gate, "go\n"); err != nil {
			t.Fatalf("release writer: %v", err)
		}
		w.gate.Close()
	}
	return ws
}

// startWriterSpec starts a writer process doing s with e's configuration.
func startWriterSpec(t *testing.T, e *env, s contendSpec) *contendWriter {
	t.Helper()
	s.Config = json.RawMessage(testutil.ConfigJSON(t, e.cfg))
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envContendWriter+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &contendWriter{cmd: cmd, ready: make(chan struct{}), done: make(chan error, 1)}
	if s.Gate {
		if w.gate, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 1 && f[0] == "ready" {
				close(w.ready)
				continue
			}
			if len(f) != 2 {
				continue
			}
			n, _ := strconv.Atoi(f[1])
			w.mu.Lock()
			switch f[0] {
			case "commit":
				w.commits = n
			case "continued":
				w.continued = n
			case "missed":
				w.missed = n
			}
			w.mu.Unlock()
		}
		io.Copy(io.Discard, stdout)
		w.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return w
}

// wait waits for the writer to exit successfully.
func (w *contendWriter) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-w.done:
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("writer did not finish")
	}
}

// waitCommits waits until the writer committed n transactions.
func (w *contendWriter) waitCommits(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if c, _ := w.progress(); c >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("writer did not reach %d commits", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// contendSetup creates the database (DELETE mode, about 1 MiB of filler so
// that the writers' tables land in several chunks) and its writer tables.
func contendSetup(t *testing.T, e *env, tables ...string) string {
	t.Helper()
	path := filepath.Join(e.dir, "contended.db")
	db := e.open(path, "_journal_mode=DELETE")
	stmts := []string{"CREATE TABLE filler(v BLOB)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 250) INSERT INTO filler SELECT randomblob(4000) FROM n"}
	for _, tb := range tables {
		stmts = append(stmts, "CREATE TABLE "+tb+"(id INTEGER PRIMARY KEY, v BLOB)")
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// contendVerify flushes the database through a connection of this process
// and checks that the latest replica restores to the file's bytes, and
// that every version in the store passes integrity_check.
func contendVerify(t *testing.T, e *env, path string) {
	t.Helper()
	db := e.open(path, "")
	var n int
	if err := db.QueryRow("SELECT count(*) FROM filler").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA verneuil_flush"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := testutil.OpenFileStore(t, e.store)
	testutil.RestoreCompare(t, s, e.key(path), path)
	ctx := context.Background()
	seqs, err := restore.Versions(ctx, s, e.key(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range seqs {
		m, err := restore.Version(ctx, s, e.key(path), seq)
		if err != nil {
			t.Fatalf("version %d: %v", seq, err)
		}
		out := filepath.Join(t.TempDir(), "v.db")
		if err := restore.ToFile(ctx, s, m, out); err != nil {
			t.Fatalf("restore version %d: %v", seq, err)
		}
		testutil.IntegrityCheck(t, out)
	}
	t.Logf("%d versions in the store, all sound; the latest is the file", len(seqs))
}

func contendEnv(t *testing.T) *env {
	return newEnv(t, func(c *config.Config) {
		c.UploadInterval = config.Duration(20 * time.Millisecond)
	})
}

// Three writer processes inserting single rows in turn: most captures
// continue from the other processes' commits, and the replica is exact.
func TestContendedWritersReplicaExact(t *testing.T) {
	e := contendEnv(t)
	path := contendSetup(t, e, "a", "b", "c")
	ws := startWriters(t, e, path, 150, "a", "b", "c")
	continued, missed := 0, 0
	for _, w := range ws {
		w.wait(t)
		_, c := w.progress()
		continued += c
		missed += w.misses()
	}
	t.Logf("of 450 commits, %d continued from another process's record, %d started from a state the records did not reach", continued, missed)
	if continued == 0 {
		t.Fatal("no capture continued from another process's commit: every commit adopted or rescanned")
	}
	contendVerify(t, e, path)
}

// A writer killed (-9) in the middle of the exchange, at a moment that
// varies: its record may be missing or torn, or its transaction left as a
// hot journal; the others go on and the replica is exact.
func TestContendedWriterKilled(t *testing.T) {
	for _, after := range []int{7, 23, 41} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			e := contendEnv(t)
			path := contendSetup(t, e, "a", "b", "c")
			victim := startWriter(t, e, path, "a", 1<<30, false)
			other := startWriter(t, e, path, "b", 120, false)
			other.waitCommits(t, after)
			victim.waitCommits(t, 5)
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-victim.done
			late := startWriter(t, e, path, "c", 60, false)
			other.wait(t)
			late.wait(t)
			contendVerify(t, e, path)
		})
	}
}

// A writer that bypasses the VFS commits between the replicating writers:
// its changes are not in any record, the chain breaks, and the captures
// fall back to rescans; the replica is exact.
func TestContendedWritersWithBypass(t *testing.T) {
	e := contendEnv(t)
	path := contendSetup(t, e, "a", "b", "x")
	a := startWriter(t, e, path, "a", 120, false)
	b := startWriter(t, e, path, "b", 120, false)
	a.waitCommits(t, 20)
	x := startWriter(t, e, path, "x", 40, true)
	x.wait(t)
	a.wait(t)
	b.wait(t)
	contendVerify(t, e, path)
}
