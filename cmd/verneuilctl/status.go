package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/spool"
)

func init() {
	register(&command{
		name:    "status",
		usage:   "[--prune]",
		summary: "show the spool backlog, replication lag and last upload error of every database on this host",
		examples: []string{
			"verneuilctl status",
			"verneuilctl status --json | jq '.[] | select(.pending)'",
			"verneuilctl status --prune  # forget databases whose file no longer exists",
		},
		json: `[{"path": "/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db",
  "staged_version": "1764057600123456789", "staged_commit_time": "2026-11-25T08:00:00.123456789Z",
  "uploaded_version": "1764057600123456789", "uploaded_commit_time": "2026-11-25T08:00:00.123456789Z",
  "pending": false, "lag_seconds": 0, "spool_bytes": 1130,
  "last_error": {"message": "...", "failures": 3, "since": "...", ...},
  "wal": false, "changed_outside_capture": false, "missing": false, "pruned": false,
  "reason": "...", "error": "..."}, ...]
(last_error and the flags after pending appear only when set; last_error.message is the full error)`,
		run: runStatus,
	})
}

// dbStatus is one row of status.
type dbStatus struct {
	Path            string    `json:"path"`
	Key             string    `json:"key"`
	StagedVersion   uint64    `json:"staged_version,string"`
	StagedCommit    time.Time `json:"staged_commit_time,omitzero"`
	UploadedVersion uint64    `json:"uploaded_version,string"`
	UploadedCommit  time.Time `json:"uploaded_commit_time,omitzero"`
	// Pending: a committed version is staged but not uploaded yet.
	Pending bool `json:"pending"`
	// LagSeconds estimates how long the oldest waiting commit has waited
	// (at least since the newest staged commit, and since the first failed
	// upload when uploads fail); 0 when up to date.
	LagSeconds float64 `json:"lag_seconds"`
	SpoolBytes int64   `json:"spool_bytes"`
	// LastError is why the last upload attempt failed (any process), nil
	// when it succeeded.
	LastError *spool.LastError `json:"last_error,omitempty"`
	// WAL: the database is in WAL mode (replicated; not failing).
	WAL bool `json:"wal,omitempty"`
	// ChangedOutsideCapture: the file differs from the last state
	// captured in the spool (a writer bypassed the VFS, a forked child
	// wrote with capture off, the file was replaced, a capture failed),
	// so the replica lags behind it until verneuilctl sync or the copier
	// daemon syncs it.
	ChangedOutsideCapture bool `json:"changed_outside_capture,omitempty"`
	// Missing: the database file no longer exists; the replica keeps
	// its last captured state.
	Missing bool `json:"missing,omitempty"`
	// Pruned: status --prune removed the spool of this missing database.
	Pruned bool `json:"pruned,omitempty"`
	// Reason says why the database is WAL, changed outside capture or
	// missing.
	Reason string `json:"reason,omitempty"`
	// Error is a problem reading the spool itself.
	Error string `json:"error,omitempty"`
}

func runStatus(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	prune := fs.Bool("prune", false, "forget (remove the spool of) each database whose file no longer exists and whose last version is uploaded")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("status takes no arguments")
	}
	cfg, err := a.config()
	if err != nil {
		return err
	}
	keys, err := spool.List(cfg.SpoolDir)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := []dbStatus{}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		row := statusOf(cfg.SpoolDir, key, now)
		if *prune && row.Missing {
			if err := pruneSpool(cfg.SpoolDir, &row); err != nil {
				return err
			}
		}
		rows = append(rows, row)
	}
	if a.jsonOut {
		return a.printJSON(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.stdout, "no databases in spool %s\n", cfg.SpoolDir)
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tSTATE\tLAG\tSPOOL\tREPLICA AS OF\tLAST ERROR")
	var pending, failing, outside int
	var bytes int64
	for _, r := range rows {
		bytes += r.SpoolBytes
		state, lag, errText := "up to date", "-", ""
		if r.Pending {
			pending++
			state = "pending"
			lag = fmt.Sprintf("%.1fs", r.LagSeconds)
		}
		if r.Missing {
			state, errText = "missing", r.Reason
		}
		if r.Pruned {
			state = "pruned"
		}
		if r.ChangedOutsideCapture {
			outside++
			state = "changed outside capture"
			errText = fmt.Sprintf("%s; verneuilctl sync %s (or the copier daemon) replicates it", r.Reason, r.Path)
		}
		if e := r.LastError; e != nil {
			state = "FAILING"
			errText = fmt.Sprintf("%d failures since %s", e.Failures, e.Since.UTC().Format(time.RFC3339))
			if e.Permanent {
				errText += ", permanent"
			}
			if !e.NextAttempt.IsZero() && e.NextAttempt.After(now) {
				errText += fmt.Sprintf(", next attempt in %s", e.NextAttempt.Sub(now).Round(time.Second))
			}
			errText += ": " + shortError(e.Message)
		}
		if state == "FAILING" {
			failing++
		}
		if r.Error != "" {
			state = "ERROR"
			errText = r.Error
		}
		asOf := "never"
		if !r.UploadedCommit.IsZero() {
			asOf = r.UploadedCommit.UTC().Format(timeFormat)
		}
		name := r.Path
		if name == "" {
			name = r.Key
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, state, lag, humanBytes(r.SpoolBytes), asOf, errText)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%d databases, %d pending, %d failing, %d changed outside capture; spool %s in %s\n",
		len(rows), pending, failing, outside, humanBytes(bytes), cfg.SpoolDir)
	return nil
}

func statusOf(root, key string, now time.Time) dbStatus {
	st := dbStatus{Key: key}
	d, err := spool.Existing(root, key)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	if info, err := d.Info(); err == nil {
		st.Path = info.Path
	}
	st.SpoolBytes, _ = d.Usage()
	var errs []string
	if le, err := d.ReadLastError(); err != nil {
		errs = append(errs, err.Error())
	} else {
		st.LastError = le
	}
	m, _, err := d.Manifest()
	if err != nil {
		errs = append(errs, err.Error())
	}
	up, _, err := d.Uploaded()
	if err != nil {
		errs = append(errs, err.Error())
	}
	if st.Path != "" {
		src, err := checkSource(d, st.Path, now)
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case src.Missing:
			st.Missing, st.Reason = true, "the database file no longer exists; the replica keeps its last captured state (remove the spool directory to forget the database)"
			if src.Marker {
				st.Reason += "; writes by a process that did not capture (a forked child) were never replicated"
			}
		case src.Outside:
			st.ChangedOutsideCapture, st.Reason = true, src.Reason
			st.WAL = src.WAL
		case src.WAL:
			st.WAL, st.Reason = true, walReason(st.Path)
		}
	}
	st.Error = strings.Join(errs, "; ")
	if m != nil {
		st.StagedVersion, st.StagedCommit = m.Seq, m.CommitTime.UTC()
	}
	if up != nil {
		st.UploadedVersion, st.UploadedCommit = up.Seq, up.CommitTime.UTC()
	}
	st.Pending = m != nil && spool.NeedsUpload(m, up)
	if st.Pending {
		oldest := m.CommitTime
		if st.LastError != nil && st.LastError.Since.Before(oldest) {
			oldest = st.LastError.Since
		}
		st.LagSeconds = max(now.Sub(oldest).Seconds(), 0)
	}
	return st
}

// pruneSpool removes the spool of a missing database whose last version
// is uploaded (holding its locks, so that no capture or upload is under
// way); a pending version keeps it, with the reason in row.
func pruneSpool(root string, row *dbStatus) error {
	if row.Pending {
		row.Reason += "; not pruned: its last version is not uploaded (verneuilctl flush, then prune)"
		return nil
	}
	d, err := spool.Existing(root, row.Key)
	if err != nil {
		return err
	}
	unlock, err := d.TryLock(100 * time.Millisecond)
	if err != nil || unlock == nil {
		row.Reason += "; not pruned: its spool is in use"
		return err
	}
	defer unlock()
	unlockUpload, err := d.UploadLock(false)
	if err != nil || unlockUpload == nil {
		row.Reason += "; not pruned: an upload is in progress"
		return err
	}
	defer unlockUpload()
	if err := os.RemoveAll(d.Path); err != nil {
		return fmt.Errorf("prune %s: %w", row.Path, err)
	}
	row.Pruned, row.Reason = true, "the database file no longer exists: its spool was removed (the replica stays in the target)"
	return nil
}

// Patterns of the AWS SDK's long error messages (operation, HTTP status,
// request ids, then the cause), and of chunk hashes.
var (
	apiErrorRE   = regexp.MustCompile(`api error (.*)$`)
	apiCodeRE    = regexp.MustCompile(`api error (\w+)`)
	operationRE  = regexp.MustCompile(`operation error [^:]+: (\w+)`)
	statusCodeRE = regexp.MustCompile(`StatusCode: (\d+)`)
	dialRE       = regexp.MustCompile(`dial tcp (.*)$`)
	hashRE       = regexp.MustCompile(`\b([0-9a-f]{12})[0-9a-f]{52}\b`)
)

// maxErrorText bounds an error message status prints in its table.
const maxErrorText = 240

// shortError shortens an upload error for the status table (--json keeps
// it whole). The AWS SDK's part ("operation error S3: ...", with request
// ids) becomes its operation, error code and HTTP status, after verneuil's
// own explanation when there is one (bucket missing, wrong key...), or the
// SDK's cause otherwise; chunk hashes keep 12 digits; what is still too
// long keeps its start and its end.
func shortError(msg string) string {
	if i := strings.Index(msg, "operation error "); i >= 0 {
		// A permanent error carries verneuil's explanation before the
		// SDK's part; another one only says where.
		ours := strings.TrimSuffix(strings.TrimSpace(msg[:i]), ":")
		explained := strings.HasSuffix(ours, ": "+blob.ErrPermanent.Error())
		ours = strings.TrimSuffix(ours, ": "+blob.ErrPermanent.Error())
		sdk := msg[i:]
		var b strings.Builder
		if m := operationRE.FindStringSubmatch(sdk); m != nil {
			b.WriteString(m[1])
		}
		switch {
		case explained:
			if m := apiCodeRE.FindStringSubmatch(sdk); m != nil {
				b.WriteString(" " + m[1])
			}
		default:
			if m := apiErrorRE.FindStringSubmatch(sdk); m != nil {
				b.WriteString(": " + m[1])
			} else if m := dialRE.FindStringSubmatch(sdk); m != nil {
				b.WriteString(": dial " + m[1])
			}
		}
		if m := statusCodeRE.FindStringSubmatch(sdk); m != nil && m[1] != "0" {
			b.WriteString(" (HTTP " + m[1] + ")")
		}
		switch {
		case explained:
			msg = ours + " [" + b.String() + "]"
		case ours != "":
			msg = ours + ": " + b.String()
		default:
			msg = b.String()
		}
	}
	msg = hashRE.ReplaceAllString(msg, "$1…")
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText/3] + " … " + msg[len(msg)-2*maxErrorText/3:]
	}
	return msg
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
