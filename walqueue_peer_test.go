package verneuil_test

// A second replicating process commits right after commits this process
// queued (shimwalqueue.c): its commit is captured (and numbered) at once,
// while the queued ones are numbered only when this process takes its
// queue, up to a build delay later.

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
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// envWALQPeer, when set, makes the test binary a peer process
// (walqPeerMain) instead of running tests.
const envWALQPeer = "VERNEUIL_TEST_WALQ_PEER"

func init() {
	if spec := os.Getenv(envWALQPeer); spec != "" {
		os.Exit(walqPeerMain(spec))
	}
}

type walqPeerSpec struct {
	Config json.RawMessage
	Path   string
}

// walqPeerMain opens the database through its own replicator, prints
// "ready", and for each line on stdin ("go N") commits N updates (of rows
// 1-3; one without N), flushes and prints "done".
func walqPeerMain(raw string) int {
	var spec walqPeerSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "peer spec:", err)
		return 2
	}
	ctx := context.Background()
	cfg, err := config.Parse(spec.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer config:", err)
		return 2
	}
	r, err := replicator.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer replicator:", err)
		return 2
	}
	defer r.Close(ctx)
	db, err := sql.Open("sqlite3", "file:"+spec.Path+"?vfs=verneuil&_busy_timeout=10000")
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer open:", err)
		return 2
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		fmt.Fprintln(os.Stderr, "peer read:", err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			return 0
		}
		n := 1 // "go N": N commits
		fmt.Sscanf(line, "go %d", &n)
		for i := range n {
			if _, err := db.Exec("UPDATE t SET v=randomblob(100) WHERE id=?", 1+i%3); err != nil {
				fmt.Fprintln(os.Stderr, "peer update:", err)
				return 1
			}
		}
		if err := r.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "peer flush:", err)
			return 1
		}
		fmt.Fprintln(out, "done")
		out.Flush()
	}
}

// TestWALQueue_PeerCommitAfterQueued: this process queues a commit, a
// peer process commits right after it and flushes; once this process took
// its queue (its build) and flushed, the replica must be the reference
// (the peer's commit is the last one). The queued commit must not be
// numbered after the peer's, which it precedes.
func TestWALQueue_PeerCommitAfterQueued(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.UploadInterval = config.Duration(20 * time.Millisecond)
	})
	path := filepath.Join(e.dir, "peer.db")
	v := e.wqOpen(path)
	wqWAL(t, v)
	wqSeed(t, v, 300)
	e.checkWALReplica(t, path)

	peer := startWALQPeer(t, e, path)

	for round := range 5 {
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 2+round) // captured: enables the queue
		before := wqRead()
		mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 20+round) // queued: a build in 100 ms
		wqMustQueue(t, before, fmt.Sprintf("round %d", round))
		queued := wqDumpDB(t, v, -1) // the state the queued commit left
		peer.commit(t, 1)
		// This process's build takes the queue (no timing asserted: the
		// wait is only bounded).
		for deadline := time.Now().Add(time.Minute); wqRead().takes == before.takes; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the queue was never taken")
			}
		}
		if err := e.r.Flush(context.Background()); err != nil {
			t.Fatalf("flush: %v", err)
		}
		ref := walReference(t, path)
		got := e.wqRestored(t, path)
		if testutil.FileSHA256(t, got) != testutil.FileSHA256(t, ref) {
			if wqDump(t, got) == queued {
				t.Fatalf("round %d: the replica is the state of this process's queued commit, before the peer's later commit (%s)",
					round, testutil.DescribeDiff(got, ref))
			}
			t.Fatalf("round %d: the replica is not the reference (%s)", round, testutil.DescribeDiff(got, ref))
		}
	}
}

// walqPeer is a running peer process.
type walqPeer struct {
	stdin io.WriteCloser
	lines *bufio.Scanner
}

func startWALQPeer(t *testing.T, e *env, path string) *walqPeer {
	t.Helper()
	raw, err := json.Marshal(walqPeerSpec{Config: json.RawMessage(testutilConfigJSON(t, e)), Path: path})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWALQPeer+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	p := &walqPeer{stdin, lines}
	p.expect(t, "ready")
	return p

}

func (p *walqPeer) expect(t *testing.T, want string) {
	t.Helper()
	if !p.lines.Scan() || strings.TrimSpace(p.lines.Text()) != want {
		t.Fatalf("peer: want %q, got %q (%v)", want, p.lines.Text(), p.lines.Err())
	}
}

// commit has the peer commit n times and flush.
func (p *walqPeer) commit(t *testing.T, n int) {
	t.Helper()
	if _, err := fmt.Fprintf(p.stdin, "go %d\n", n); err != nil {
		t.Fatal(err)
	}
	p.expect(t, "done")
}

// TestWALQueue_PeersAlternate: this process and a peer process, both
// replicating with queues, commit several times each in turn; after both
// flushed, the replica is the reference.
func TestWALQueue_PeersAlternate(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.UploadInterval = config.Duration(20 * time.Millisecond)
	})
	path := filepath.Join(e.dir, "alt.db")
	v := e.wqOpen(path)
	wqWAL(t, v)
	wqSeed(t, v, 300)
	e.checkWALReplica(t, path)
	peer := startWALQPeer(t, e, path)
	before := wqRead()
	for round := range 8 {
		for i := range 1 + round%4 {
			mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 10+i)
		}
		peer.commit(t, 1+(round+2)%4)
		if round%2 == 1 {
			for i := range 3 {
				mustExec(t, v, "UPDATE t SET v=randomblob(100) WHERE id=?", 20+i)
			}
		}
		e.checkWALReplica(t, path)
	}
	wqMustQueue(t, before, "peers alternate")
}

func testutilConfigJSON(t *testing.T, e *env) string {
	t.Helper()
	b, err := json.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
