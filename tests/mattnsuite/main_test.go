package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
)

// TestPassConfigEscapesPaths: a work directory with a space, a percent
// sign or a '#' (a checkout in "My Projects") still names its own spool
// and target.
func TestPassConfigEscapesPaths(t *testing.T) {
	for _, dir := range []string{"/srv/plain", "/home/a b/c%41d/#e?f"} {
		p := &pass{mode: "verneuil", dir: filepath.Join(dir, "verneuil")}
		cfg, err := config.Load(p.config())
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if got, want := cfg.Targets[0].Dir(), filepath.Join(p.dir, "store"); got != want {
			t.Errorf("target directory %q, want %q", got, want)
		}
		if got, want := cfg.SpoolDir, filepath.Join(p.dir, "spool"); got != want {
			t.Errorf("spool %q, want %q", got, want)
		}
		if !cfg.MakeDefault || cfg.Hostname != replicaHost {
			t.Errorf("make_default %v, hostname %q", cfg.MakeDefault, cfg.Hostname)
		}
	}
}

func TestExtraConfig(t *testing.T) {
	tests := []struct {
		spec, wantErr string
		want          map[string]any
	}{
		{spec: ""},
		{spec: `{"flush_on_close": true, "upload_interval": "50ms"}`, want: map[string]any{"flush_on_close": true, "upload_interval": "50ms"}},
		{spec: `{"targets": []}`, wantErr: `"targets" is set by mattn-suite`},
		{spec: `{"make_default": false}`, wantErr: `"make_default" is set by mattn-suite`},
		{spec: `[1]`, wantErr: "not a JSON object"},
	}
	for _, tc := range tests {
		got, err := extraConfig(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("extraConfig(%s) = %v, want error %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("extraConfig(%s) = %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
	// The keys reach the configuration verneuil parses; a typo is caught there.
	p := &pass{mode: "verneuil", dir: "/srv/w/verneuil", extra: `{"flush_on_close": true}`}
	cfg, err := config.Load(p.config())
	if err != nil || !cfg.FlushOnClose {
		t.Fatalf("config with flush_on_close: %+v, %v", cfg, err)
	}
	p.extra = `{"flush_on_closee": true}`
	if _, err := config.Load(p.config()); err == nil || !strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("a misspelt key: %v", err)
	}
}

// TestPassKilledPastItsBound: a pass whose process (here a stand-in for
// the go command that hangs, with a child of its own) outlives -timeout
// plus the grace is killed with its whole process group, and reported as
// a pass without a harness report rather than hanging the run.
func TestPassKilledPastItsBound(t *testing.T) {
	dir := t.TempDir()
	childPid := filepath.Join(dir, "child.pid")
	fakeGo := filepath.Join(dir, "go")
	script := "#!/bin/sh\nsleep 1000 &\necho $! > " + childPid + "\nsleep 1000\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(g time.Duration) { passGrace = g }(passGrace)
	passGrace = 0
	p := &pass{mode: "verneuil", dir: filepath.Join(dir, "verneuil")}
	p.run(context.Background(), options{gobin: fakeGo, timeout: time.Second, shuffle: "off"}, "mattn.test")
	if p.err != nil {
		t.Fatal(p.err)
	}
	if len(p.result.Tests) != 0 || p.report.complete || !strings.Contains(p.report.StartError, "no harness report") {
		t.Fatalf("result %+v, report %+v", p.result, p.report)
	}
	data, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Killed: gone, or a zombie waiting for a reaper.
	for i := 0; ; i++ {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if i == 1000 {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the pass's child %d survived the kill: %s", pid, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPassConfigS3(t *testing.T) {
	p := &pass{mode: "verneuil", dir: "/srv/w/verneuil", s3: "http://127.0.0.1:9000"}
	cfg, err := config.Load(p.config())
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Targets[0]
	if len(cfg.Targets) != 1 || tg.URL != "s3://"+s3Bucket+"/replicas" || tg.Endpoint != p.s3 || !tg.PathStyle {
		t.Fatalf("targets = %+v", cfg.Targets)
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := options{timeout: time.Minute, shuffle: "off"}
	tests := []struct {
		name    string
		change  func(*options)
		wantErr string
	}{
		{name: "defaults", change: func(*options) {}},
		{name: "s3 with faults", change: func(o *options) { o.s3, o.s3Faults = true, 0.5 }},
		{name: "faults without s3", change: func(o *options) { o.s3Faults = 0.5 }, wantErr: "with -s3"},
		{name: "faults of 1", change: func(o *options) { o.s3, o.s3Faults = true, 1 }, wantErr: "fraction in [0, 1)"},
		{name: "negative faults", change: func(o *options) { o.s3, o.s3Faults = true, -0.1 }, wantErr: "fraction"},
		{name: "outage on S3", change: func(o *options) { o.s3, o.outage = true, true }, wantErr: "-outage needs the local target"},
		{name: "bad shuffle", change: func(o *options) { o.shuffle = "sometimes" }, wantErr: "-shuffle"},
		{name: "seeded shuffle", change: func(o *options) { o.shuffle = "42" }},
		{name: "reserved config key", change: func(o *options) { o.extra = `{"spool_dir": "/x"}` }, wantErr: "-config"},
		{name: "zero timeout", change: func(o *options) { o.timeout = 0 }, wantErr: "-timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.change(&o)
			err := o.validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("validate = %v, want %q", err, tc.wantErr)
			}
		})
	}
	o := options{timeout: time.Minute, shuffle: "on"}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.ParseInt(o.shuffle, 10, 64); err != nil {
		t.Fatalf("-shuffle on became %q, not a seed", o.shuffle)
	}
}
