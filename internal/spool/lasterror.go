package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LastErrorFile is the name of the file in a database's spool directory
// that records why its last upload failed. The copier that failed writes it
// and the next successful upload (by any process) removes it, so that
// `verneuilctl status`, run from another process, can show the reason.
const LastErrorFile = "last_error"

// maxLastError bounds the message stored in LastErrorFile.
const maxLastError = 4096

// LastError is the content of LastErrorFile (JSON).
type LastError struct {
	// Message is the error, one line.
	Message string `json:"message"`
	// Time is when the most recent failed attempt ended.
	Time time.Time `json:"time"`
	// Since is when the current run of failures began.
	Since time.Time `json:"since"`
	// Failures counts consecutive failed upload attempts.
	Failures int `json:"failures"`
	// Permanent reports that the blob store answered with an error that
	// retrying does not fix (missing bucket, denied access, bad
	// credentials); the copier still retries later, slowly.
	Permanent bool `json:"permanent,omitempty"`
	// NextAttempt is when the copier that wrote the record plans to try
	// again (zero when unknown).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// PID is the process that recorded the failure.
	PID int `json:"pid"`
}

// WriteLastError records why the last upload failed (atomically).
func (d *Dir) WriteLastError(e LastError) error {
	if len(e.Message) > maxLastError {
		e.Message = e.Message[:maxLastError] + "…"
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("spool write %s: %w", LastErrorFile, err)
	}
	return d.writeAtomic(LastErrorFile, data)
}

// ReadLastError returns the recorded upload failure, or nil when the last
// upload succeeded (or none failed).
func (d *Dir) ReadLastError() (*LastError, error) {
	data, err := os.ReadFile(filepath.Join(d.Path, LastErrorFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read spool %s/%s: %w", d.Path, LastErrorFile, err)
	}
	var e LastError
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("read spool %s/%s: %w", d.Path, LastErrorFile, err)
	}
	return &e, nil
}

// ClearLastError removes the failure record; a missing record is not an
// error.
func (d *Dir) ClearLastError() error {
	err := os.Remove(filepath.Join(d.Path, LastErrorFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool clear %s: %w", LastErrorFile, err)
	}
	return nil
}

// Stamp identifies one published version of the staged manifest file
// without reading it: every Publish renames a new file into place or
// exchanges the spare file with a later modification time, so the inode,
// size or modification time changes.
type Stamp struct {
	Ino   uint64
	Size  int64
	MTime int64 // nanoseconds
}

// IsZero reports whether s is the zero Stamp (no manifest).
func (s Stamp) IsZero() bool { return s == Stamp{} }

// Reliable reports whether s identifies one version: publishing gives
// every manifest a modification time later than the previous one's and
// never a whole second, except where the file system keeps coarser times
// (there it sets whole seconds, and a freed inode can come back with the
// same size and time). Identify versions by content when it is not.
func (s Stamp) Reliable() bool { return s.MTime%int64(time.Second) != 0 }

// ManifestStamp returns the Stamp of the staged manifest, the zero Stamp
// when there is none.
func (d *Dir) ManifestStamp() (Stamp, error) {
	st, err := os.Stat(filepath.Join(d.Path, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Stamp{}, nil
	}
	if err != nil {
		return Stamp{}, fmt.Errorf("stat spool manifest: %w", err)
	}
	s := Stamp{Size: st.Size(), MTime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.Ino = uint64(sys.Ino)
	}
	return s, nil
}

// MarkUploaded records encoded, the staged manifest's content, as the last
// upload (WriteUploaded).
func (d *Dir) MarkUploaded(encoded []byte) error { return d.WriteUploaded(encoded) }
