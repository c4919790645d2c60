package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// writerProc is a running writer child.
type writerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout lines; closed at EOF
	done  chan error  // Wait's result
}

func startWriter(spec writerSpec, logPath string) (*writerProc, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VERNEUIL_LSBENCH_ROLE=writer", "VERNEUIL_LSBENCH_SPEC="+string(js))
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = log
	w := &writerProc{cmd: cmd, lines: make(chan string, 16), done: make(chan error, 1)}
	if w.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start writer: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- strings.TrimSpace(sc.Text())
		}
		close(w.lines)
		w.done <- cmd.Wait()
		log.Close()
	}()
	return w, nil
}

// expect waits for the line want from the writer.
func (w *writerProc) expect(ctx context.Context, want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-w.lines:
			if !ok {
				return fmt.Errorf("writer exited before %s: %v", want, <-w.done)
			}
			if l == want {
				return nil
			}
		case <-t.C:
			return fmt.Errorf("writer: no %s within %v", want, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *writerProc) send(line string) error {
	_, err := io.WriteString(w.stdin, line+"\n")
	return err
}

// stop asks the writer to exit and waits for it (killing it, by its pid,
// after timeout).
func (w *writerProc) stop(timeout time.Duration) error {
	w.send("EXIT")
	w.stdin.Close()
	for range w.lines {
	}
	select {
	case err := <-w.done:
		return err
	case <-time.After(timeout):
		w.cmd.Process.Kill()
		return fmt.Errorf("writer did not exit within %v", timeout)
	}
}

// litestreamProc is a running `litestream replicate`.
type litestreamProc struct {
	cmd  *exec.Cmd
	done chan error
}

// litestreamConfig is the configuration of one `litestream replicate` for
// dbs, each replicated to bucket under its own prefix, at endpoint. All
// other settings are Litestream's defaults.
func litestreamConfig(endpoint, bucket string, dbs, prefixes []string) string {
	var b strings.Builder
	b.WriteString("logging:\n  level: warn\n  stderr: true\ndbs:\n")
	for i, p := range dbs {
		fmt.Fprintf(&b, "  - path: %q\n    replica:\n      type: s3\n      bucket: %q\n      path: %q\n"+
			"      endpoint: %q\n      region: us-east-1\n      force-path-style: true\n",
			p, bucket, prefixes[i], endpoint)
	}
	return b.String()
}

func startLitestream(bin, configPath, logPath string) (*litestreamProc, error) {
	cmd := exec.Command(bin, "replicate", "-config", configPath)
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start litestream: %w", err)
	}
	l := &litestreamProc{cmd: cmd, done: make(chan error, 1)}
	go func() {
		l.done <- cmd.Wait()
		log.Close()
	}()
	return l, nil
}

// exited reports whether Litestream has exited (false for no process).
func (l *litestreamProc) exited() bool {
	if l == nil {
		return false
	}
	select {
	case err := <-l.done:
		l.done <- err
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (Litestream then syncs what is left) and waits,
// killing the process, by its pid, after timeout.
func (l *litestreamProc) stop(timeout time.Duration) error {
	l.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.done:
		l.done <- nil
		return nil
	case <-time.After(timeout):
		l.cmd.Process.Kill()
		<-l.done
		return fmt.Errorf("litestream did not exit within %v of SIGTERM", timeout)
	}
}

// litestreamRestore runs `litestream restore` of db (as named in the
// configuration) to out.
func litestreamRestore(ctx context.Context, bin, configPath, db, out string) error {
	cmd := exec.CommandContext(ctx, bin, "restore", "-config", configPath, "-o", out, db)
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("litestream restore: %w: %s", err, msg)
	}
	return nil
}

// toolBinary returns <repo>/.cache/tools/NAME, found from the working
// directory up.
func toolBinary(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".cache", "tools", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not installed in .cache/tools (run scripts/install-litestream.sh)", name)
		}
		dir = parent
	}
}
