package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
	"github.com/verneuil-go/verneuil/internal/testutil"
)

// ctlArgs runs verneuilctl in this process without a configuration.
func ctlArgs(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

// TestHelp: every command prints its usage, each of its flags and an
// example on stdout with exit 0, for -h, --help and help CMD; the
// general help too; errors in the invocation exit 2 on stderr.
func TestHelp(t *testing.T) {
	for _, cmd := range sortedCommands() {
		fs, err := flagsOf(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if len(cmd.examples) == 0 {
			t.Errorf("%s has no example", cmd.name)
		}
		for _, args := range [][]string{{cmd.name, "-h"}, {cmd.name, "--help"}, {"help", cmd.name}, {"--config", "{}", cmd.name, "x", "--help"}} {
			out, errOut, code := ctlArgs(args...)
			if code != 0 || errOut != "" {
				t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
			}
			for _, want := range []string{"usage: verneuilctl " + cmd.name, "examples:\n  "} {
				if !strings.Contains(out, want) {
					t.Errorf("%v: no %q in\n%s", args, want, out)
				}
			}
			fs.VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out, "--"+f.Name) || !strings.Contains(out, strings.Fields(flagUsage(f))[0]) {
					t.Errorf("%v: flag --%s or its description missing from\n%s", args, f.Name, out)
				}
			})
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		out, _, code := ctlArgs(args...)
		if code != 0 || !strings.Contains(out, "commands:") || !strings.Contains(out, "restore") {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: verneuilctl"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"help", "nosuch"}, `unknown command "nosuch"`},
		{[]string{"list", "--nosuch"}, "flag provided but not defined: -nosuch"},
		{[]string{"list", "--log-level", "verbose"}, `--log-level: "verbose" is not one of debug, info, warn, error`},
		{[]string{"demo", "--rows", "-1"}, "--rows must not be negative"},
		{[]string{"copier", "--workers", "-2"}, "--workers must not be negative"},
	} {
		out, errOut, code := ctlArgs(tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestVersion: --version and version print the version, Go's and
// SQLite's.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, errOut, code := ctlArgs(args...)
		if code != 0 || !strings.HasPrefix(out, "verneuilctl ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "SQLite 3.") {
			t.Errorf("%v: exit %d %q %q", args, code, out, errOut)
		}
	}
	out, _, _ := ctlArgs("version", "--json")
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["go"] != runtime.Version() || !strings.HasPrefix(v["sqlite"], "3.") || v["version"] == "" {
		t.Errorf("version --json: %q %v", out, err)
	}
}

// TestCLIReference: docs/CLI.md is what help --reference prints (make
// docs regenerates it).
func TestCLIReference(t *testing.T) {
	out, errOut, code := ctlArgs("help", "--reference")
	if code != 0 {
		t.Fatalf("help --reference: exit %d: %s", code, errOut)
	}
	for _, cmd := range sortedCommands() {
		if !strings.Contains(out, "\n## "+cmd.name+"\n") {
			t.Errorf("reference has no section for %s", cmd.name)
		}
	}
	doc, err := os.ReadFile("../../docs/CLI.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(doc) != out {
		t.Errorf("docs/CLI.md is out of date: run make docs")
	}
}

// TestCompletion: the bash completion script completes command names and
// each command's flags.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, errOut, code := ctlArgs("completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d: %s", code, errOut)
	}
	complete := func(words ...string) []string {
		t.Helper()
		prog := script + "\nCOMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "; _verneuilctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n"
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("verneuilctl", "res"); !slices.Equal(got, []string{"restore"}) {
		t.Errorf("complete 'res': %q", got)
	}
	if got := complete("verneuilctl", "--config", "x.json", "restore", "--if-"); !slices.Equal(got, []string{"--if-db-not-exists", "--if-replica-exists"}) {
		t.Errorf("complete 'restore --if-': %q", got)
	}
	if _, _, code := ctlArgs("completion", "fish"); code != exitUsage {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}

// bigSeq is a version number above 2^53, as clock-derived ones are.
const bigSeq = uint64(1764057600123456789)

// TestJSONVersionsRoundTrip: versions read from --json by a parser that
// reads numbers as doubles (as jq 1.6 does) are accepted back by
// --version, and the same number is printed in text.
func TestJSONVersionsRoundTrip(t *testing.T) {
	s := newTestSpool(t)
	path := "/srv/app.db"
	for _, seq := range []uint64{bigSeq, bigSeq + 1} {
		s.stage(t, path, seq)
		s.mustCtl(t, "flush")
	}
	var versions []map[string]any // numbers decode as float64
	if err := json.Unmarshal([]byte(s.mustCtl(t, "list", "--versions", path, "--json")), &versions); err != nil || len(versions) != 2 {
		t.Fatalf("list --versions --json: %d versions, %v", len(versions), err)
	}
	v, ok := versions[0]["version"].(string)
	if !ok || v != "1764057600123456789" {
		t.Fatalf("version in JSON: %#v, want the string \"1764057600123456789\"", versions[0]["version"])
	}
	out := filepath.Join(s.dir, "v1.db")
	s.mustCtl(t, "restore", path, "--version", v, "--out", out)
	if got := testutil.FileSHA256(t, out); got != sha(bytes.Repeat([]byte{byte(bigSeq & 0xff)}, 4096)) {
		t.Errorf("restore --version %s restored another version", v)
	}
	if text := s.mustCtl(t, "list", "--versions", path); !strings.Contains(text, "version "+v+"\t") {
		t.Errorf("list --versions text does not show version %s:\n%s", v, text)
	}
	for _, args := range [][]string{{"list"}, {"manifest", path}, {"status"}, {"flush"}, {"manifest-name", path}} {
		var anyJSON any
		if err := json.Unmarshal([]byte(s.mustCtl(t, append(args, "--json")...)), &anyJSON); err != nil {
			t.Errorf("%v --json: %v", args, err)
		}
	}
	var rows []map[string]any
	json.Unmarshal([]byte(s.mustCtl(t, "status", "--json")), &rows)
	if len(rows) != 1 || rows[0]["uploaded_version"] != "1764057600123456790" {
		t.Errorf("status --json: %v, want uploaded_version the string 1764057600123456790", rows)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// mustCtl runs verneuilctl and fails the test unless it exits 0.
func (s *testSpool) mustCtl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := s.ctl(t, args...)
	if code != 0 {
		t.Fatalf("verneuilctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// TestNamesRoundTrip: what list prints, the replica key and a local path
// name the same database everywhere; an unknown database is an error
// (exit 3) naming it readably; list is sorted by name.
func TestNamesRoundTrip(t *testing.T) {
	s := newTestSpool(t)
	for i, p := range []string{"/srv/b.db", "/srv/a.db", "/srv/c.db"} {
		s.stage(t, p, bigSeq+uint64(i))
	}
	s.mustCtl(t, "flush")
	lines := strings.Split(strings.TrimSpace(s.mustCtl(t, "list")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ctltest:/srv/a.db\t") || !strings.HasPrefix(lines[2], "ctltest:/srv/c.db\t") {
		t.Fatalf("list, want sorted by name with version, time and size:\n%s", strings.Join(lines, "\n"))
	}
	name := strings.Split(lines[0], "\t")[0]
	key := names.Key(name)
	want := s.mustCtl(t, "list", "--versions", "/srv/a.db")
	for _, arg := range []string{name, key} {
		if got := s.mustCtl(t, "list", "--versions", arg); got != want {
			t.Errorf("list --versions %s: %q, want %q", arg, got, want)
		}
		if got := s.mustCtl(t, "manifest-name", arg); strings.TrimSpace(got) != key {
			t.Errorf("manifest-name %s: %q, want %s", arg, got, key)
		}
		s.mustCtl(t, "manifest", arg)
		s.mustCtl(t, "restore", arg, "--out", filepath.Join(s.dir, "r-"+arg[:4]+".db"))
	}
	s.mustCtl(t, "manifest", "--manifest", name)
	for _, args := range [][]string{
		{"list", "--versions", "ctltest:/srv/none.db"},
		{"list", "--versions", "/srv/none.db"},
		{"manifest", "ctltest:/srv/none.db"},
		{"restore", "ctltest:/srv/none.db", "--out", filepath.Join(s.dir, "x.db")},
	} {
		out, errOut, code := s.ctl(t, args...)
		if code != exitNoReplica || out != "" || !strings.Contains(errOut, "ctltest:/srv/none.db") || strings.Contains(errOut, "%2F") {
			t.Errorf("%v: exit %d, %q %q; want exit 3 and the readable name", args, code, out, errOut)
		}
	}
	if _, errOut, code := s.ctl(t, "list", "--versions", name, "--hostname", "h"); code != exitUsage {
		t.Errorf("--hostname with a replica name: exit %d %s", code, errOut)
	}
}

// TestRestoreForBoot: the flags boot scripts use, the exit statuses and
// the usage errors of restore.
func TestRestoreForBoot(t *testing.T) {
	s := newTestSpool(t)
	dbPath := filepath.Join(s.dir, "app.db")
	s.stage(t, dbPath, bigSeq)
	s.mustCtl(t, "flush")

	// --out defaults to the database's path, which must not exist.
	s.mustCtl(t, "restore", dbPath)
	if _, err := os.Stat(dbPath); err != nil {
		t.Fatalf("restore without --out: %v", err)
	}
	if _, errOut, code := s.ctl(t, "restore", dbPath); code != exitFailure || !strings.Contains(errOut, "--force") {
		t.Errorf("restore over the database without --force: exit %d %s", code, errOut)
	}
	// Boot: nothing to do when the database exists, or has no replica.
	for _, args := range [][]string{
		{"restore", dbPath, "--if-db-not-exists"},
		{"restore", filepath.Join(s.dir, "new.db"), "--if-replica-exists"},
		{"restore", filepath.Join(s.dir, "new.db"), "--if-replica-exists", "--if-db-not-exists"},
	} {
		if _, errOut, code := s.ctl(t, args...); code != 0 || !strings.Contains(errOut, "nothing restored") {
			t.Errorf("%v: exit %d %s", args, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "new.db")); err == nil {
		t.Error("--if-replica-exists created the output")
	}
	if _, _, code := s.ctl(t, "restore", filepath.Join(s.dir, "new.db")); code != exitNoReplica {
		t.Errorf("restore of a database without replica: exit %d, want %d", code, exitNoReplica)
	}
	out, _, code := s.ctl(t, "restore", dbPath, "--if-db-not-exists", "--json")
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res["restored"] != false {
		t.Errorf("restore --if-db-not-exists --json: exit %d %q %v", code, out, err)
	}

	// An unreachable target: exit 4, also with --if-replica-exists.
	gone := s.withTargets(t, filepath.Join(s.dir, "missing-store"))
	for _, args := range [][]string{{"restore", dbPath, "--out", filepath.Join(s.dir, "o.db")}, {"restore", dbPath, "--out", filepath.Join(s.dir, "o.db"), "--if-replica-exists"}, {"list"}} {
		if _, errOut, code := ctlArgs(append([]string{"--config", gone}, args...)...); code != exitUnreachable {
			t.Errorf("%v on an unreachable target: exit %d %s, want %d", args, code, errOut, exitUnreachable)
		}
	}
	// --target picks one; a missing second target does not block the first.
	two := s.withTargets(t, s.store, filepath.Join(s.dir, "missing-store"))
	for _, args := range [][]string{{"list"}, {"list", "--target", "1"}, {"list", "--target", config.FileURL(s.store)}} {
		if out, errOut, code := ctlArgs(append([]string{"--config", two}, args...)...); code != 0 || !strings.Contains(out, "app.db") {
			t.Errorf("%v with a missing second target: exit %d %q %s", args, code, out, errOut)
		}
	}
	if _, _, code := ctlArgs("--config", two, "list", "--target", "2"); code != exitUnreachable {
		t.Errorf("list --target 2 (missing): exit %d, want %d", code, exitUnreachable)
	}
	if _, _, code := ctlArgs("--config", two, "list", "--target", "3"); code != exitUsage {
		t.Errorf("list --target 3 of 2: exit %d, want 2", code)
	}

	// Usage errors.
	pinned := filepath.Join(s.dir, "pinned.manifest")
	s.mustCtl(t, "manifest", dbPath, "--out", pinned)
	for _, args := range [][]string{
		{"restore", "--manifest", pinned, "--at", "-1m", "--out", "x.db"},
		{"restore", "--manifest", pinned, "--version", "5", "--out", "x.db"},
		{"restore", "--manifest", pinned, "--hostname", "h", "--out", "x.db"},
		{"restore", "--manifest", pinned},
		{"restore", dbPath, "--at", "yesterday", "--out", "x.db"},
		{"restore", dbPath, "--at", "-1m", "--version", "5", "--out", "x.db"},
		{"restore", dbPath, "--force", "--if-db-not-exists"},
		{"restore", "otherhost:/srv/app.db"},
	} {
		if _, errOut, code := s.ctl(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d %s, want a usage error", args, code, errOut)
		}
	}
	s.mustCtl(t, "restore", "--manifest", pinned, "--out", filepath.Join(s.dir, "pinned.db"))
}

// withTargets returns the test configuration with other target
// directories.
func (s *testSpool) withTargets(t *testing.T, dirs ...string) string {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal([]byte(s.config), &cfg); err != nil {
		t.Fatal(err)
	}
	var targets []map[string]any
	for _, d := range dirs {
		targets = append(targets, map[string]any{"url": config.FileURL(d)})
	}
	cfg["targets"] = targets
	b, _ := json.Marshal(cfg)
	return string(b)
}

// TestTimesRoundTrip: a commit time printed by list (text or JSON) or
// manifest, pasted into --at, selects that version.
func TestTimesRoundTrip(t *testing.T) {
	s := newTestSpool(t)
	path := "/srv/t.db"
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, seq := range []uint64{bigSeq, bigSeq + 1, bigSeq + 2} {
		s.stageAt(t, path, seq, base.Add(time.Duration(i)*time.Second+123456789))
		s.mustCtl(t, "flush")
	}
	text := strings.Split(strings.TrimSpace(s.mustCtl(t, "list", "--versions", path)), "\n")
	var infos []manifestInfo
	json.Unmarshal([]byte(s.mustCtl(t, "list", "--versions", path, "--json")), &infos)
	if len(text) != 3 || len(infos) != 3 {
		t.Fatalf("list --versions: %q %v", text, infos)
	}
	for i := range 3 {
		fields := strings.Split(text[i], "\t")
		ts := fields[1]
		if !strings.HasSuffix(ts, "Z") || !strings.Contains(ts, "T") {
			t.Errorf("time %q is not RFC 3339 UTC", ts)
		}
		var raw []map[string]any
		json.Unmarshal([]byte(s.mustCtl(t, "list", "--versions", path, "--json")), &raw)
		for _, at := range []string{ts, raw[i]["commit_time"].(string)} {
			out := s.mustCtl(t, "manifest", path, "--at", at)
			if !strings.Contains(out, "version "+fields[0][len("version "):]+"\n") {
				t.Errorf("--at %s selected\n%s\nwant %s", at, out, fields[0])
			}
			if !strings.Contains(out, "commit_time "+ts+"\n") {
				t.Errorf("manifest prints another time form than list (%s):\n%s", ts, out)
			}
		}
	}
}

// stageAt is stage with a commit time.
func (s *testSpool) stageAt(t *testing.T, path string, seq uint64, commit time.Time) {
	t.Helper()
	name := names.Replica("ctltest", path)
	testutil.PublishManifest(t, s.spoolDir, names.Key(name), spool.Info{Path: path, Name: name}, seq,
		bytes.Repeat([]byte{byte(seq)}, 4096), commit)
}

// TestShortError: status shortens the AWS SDK's long errors to verneuil's
// explanation (or the SDK's cause), the operation, the error code and the
// HTTP status.
func TestShortError(t *testing.T) {
	const sdk403 = "operation error S3: PutObject, https response error StatusCode: 403, RequestID: 18A2B, HostID: dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8, api error SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided."
	const hash = "7bb1c16b29027d9412bf031dcbeb4a28d16c666254641516285904bf54947d52"
	for _, tc := range []struct{ in, want string }{
		{"upload /srv/app.db: upload chunk " + hash + " to s3://b/p/: PUT chunks/" + hash + ": http://127.0.0.1:9000 rejected the request signature (wrong secret key?): permanent blob store error: " + sdk403,
			"upload /srv/app.db: upload chunk 7bb1c16b2902… to s3://b/p/: PUT chunks/7bb1c16b2902…: http://127.0.0.1:9000 rejected the request signature (wrong secret key?) [PutObject SignatureDoesNotMatch (HTTP 403)]"},
		{"operation error S3: PutObject, https response error StatusCode: 403, RequestID: 18A2B, HostID: dd90, api error AccessDenied: Access Denied.",
			"PutObject: AccessDenied: Access Denied. (HTTP 403)"},
		{`PUT x at http://127.0.0.1:1: operation error S3: GetObject, exceeded maximum number of attempts, 3, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get "http://127.0.0.1:1/b/x": dial tcp 127.0.0.1:1: connect: connection refused`,
			"PUT x at http://127.0.0.1:1: GetObject: dial 127.0.0.1:1: connect: connection refused"},
		{`operation error S3: GetObject, exceeded maximum number of attempts, 3, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get "http://127.0.0.1:1/b/x": dial tcp 127.0.0.1:1: connect: connection refused`,
			"GetObject: dial 127.0.0.1:1: connect: connection refused"},
		{"short", "short"},
	} {
		if got := shortError(tc.in); got != tc.want {
			t.Errorf("shortError:\n got %q\nwant %q", got, tc.want)
		}
	}
	if got := shortError(strings.Repeat("x", 1000)); len(got) > maxErrorText+5 {
		t.Errorf("a 1000-character error shortened to %d", len(got))
	}
}

// TestStatusPrune: status --prune forgets a database whose file is gone
// once its last version is uploaded, and keeps one with a pending version.
func TestStatusPrune(t *testing.T) {
	s := newTestSpool(t)
	gone := filepath.Join(s.dir, "gone.db")
	s.stage(t, gone, bigSeq)
	s.mustCtl(t, "flush")
	pending := filepath.Join(s.dir, "pending.db")
	s.stage(t, pending, bigSeq)
	var rows []dbStatus
	if err := json.Unmarshal([]byte(s.mustCtl(t, "status", "--prune", "--json")), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("status --prune --json: %v %v", rows, err)
	}
	for _, r := range rows {
		switch r.Path {
		case gone:
			if !r.Pruned {
				t.Errorf("uploaded missing database not pruned: %+v", r)
			}
		case pending:
			if r.Pruned || !strings.Contains(r.Reason, "not pruned") {
				t.Errorf("pending missing database: %+v", r)
			}
		}
	}
	json.Unmarshal([]byte(s.mustCtl(t, "status", "--json")), &rows)
	if len(rows) != 1 || rows[0].Path != pending {
		t.Errorf("after prune: %+v", rows)
	}
	if out := s.mustCtl(t, "list"); !strings.Contains(out, "gone.db") {
		t.Errorf("prune removed the replica:\n%s", out)
	}
}

// TestJSONOfDataCommands: sync, verify and demo print JSON with --json
// (versions as strings) and a one-line summary without.
func TestJSONOfDataCommands(t *testing.T) {
	s := newTestSpool(t)
	path := filepath.Join(s.dir, "app.db")
	writePlain(t, path, "_journal_mode=DELETE", "CREATE TABLE t(a)", "INSERT INTO t VALUES(1)")
	var synced []map[string]any
	if err := json.Unmarshal([]byte(s.mustCtl(t, "sync", path, "--json")), &synced); err != nil || len(synced) != 1 {
		t.Fatalf("sync --json: %v %v", synced, err)
	}
	if v, ok := synced[0]["version"].(string); !ok || v == "" || synced[0]["name"] != "ctltest:"+path || synced[0]["db"] != path {
		t.Errorf("sync --json: %v", synced[0])
	}
	if out := s.mustCtl(t, "sync", path); !strings.HasPrefix(out, "synced "+path+" as ctltest:"+path+" version "+synced[0]["version"].(string)) {
		t.Errorf("sync: %q", out)
	}
	var verified map[string]any
	if err := json.Unmarshal([]byte(s.mustCtl(t, "verify", path, "--json")), &verified); err != nil || verified["identical"] != true || verified["version"] != synced[0]["version"] {
		t.Errorf("verify --json: %v %v", verified, err)
	}
	var demo map[string]any
	out := s.mustCtl(t, "demo", "--dir", filepath.Join(s.dir, "demo"), "--rows", "300", "--json")
	if err := json.Unmarshal([]byte(out), &demo); err != nil || demo["identical"] != true || demo["rows"] != 300.0 {
		t.Errorf("demo --json: %v\n%s", err, out)
	}
	if _, ok := demo["version"].(string); !ok {
		t.Errorf("demo --json version: %#v", demo["version"])
	}
}
