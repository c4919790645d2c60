package spool

import (
	"encoding/binary"
	"testing"

	"github.com/verneuil-go/verneuil/internal/manifest"
)

// stateOf returns a manifest of a database state whose header has the
// given change counter and whose version id carries a version xattr
// (docs/FORMAT.md) with the given transaction seq, process and counter.
func stateOf(seq uint64, counter uint32, xseq, proc, n uint64, fill byte) *manifest.Manifest {
	header := make([]byte, 100)
	for i := range header {
		header[i] = fill
	}
	binary.BigEndian.PutUint32(header[24:28], counter)
	xattr := binary.BigEndian.AppendUint64(nil, xseq)
	xattr = binary.BigEndian.AppendUint64(xattr, proc)
	xattr = binary.BigEndian.AppendUint64(xattr, n)
	id := binary.BigEndian.AppendUint64(nil, 42) // inode
	id = append(id, byte(len(xattr)))
	id = append(append(id, xattr...), header...)
	return &manifest.Manifest{Seq: seq, Length: 100, ChunkSize: 65536, Chunk0: header,
		VersionID: id, Chunks: []manifest.Hash{manifest.HashOf(header)}}
}

// In locking_mode=EXCLUSIVE SQLite increments the file change counter
// once per lock session, not per transaction: consecutive states of such a
// database share a counter. The transaction seq in the version xattr,
// which the VFS computes from the previous one (prev+1 at least), still
// orders them: a later state must be recognised as one.
func TestRegression_FollowsExclusiveModeStates(t *testing.T) {
	v1 := stateOf(500, 6, 500, 7, 1, 1)
	v2 := stateOf(501, 6, 501, 7, 2, 2) // same counter: exclusive mode
	if !Follows(v2, v1) {
		t.Error("Follows(v2, v1) = false for consecutive states with one change counter")
	}
	if Follows(v1, v2) {
		t.Error("Follows(v1, v2) = true: an earlier state follows a later one")
	}
	// The change counter still decides when it differs.
	v3 := stateOf(502, 7, 400, 8, 1, 3)
	if !Follows(v3, v2) || Follows(v2, v3) {
		t.Error("the change counter no longer decides")
	}
	// Without xattrs (unsupported), equal counters order nothing.
	a, b := *v1, *v2
	a.VersionID, b.VersionID = a.VersionID[:8], b.VersionID[:8]
	a.VersionID = append(append(a.VersionID, 0), a.Chunk0...)
	b.VersionID = append(append(b.VersionID, 0), b.Chunk0...)
	if Follows(&b, &a) || Follows(&a, &b) {
		t.Error("states without version xattrs and one change counter ordered")
	}
}

// The upload record is a copy of an earlier staged manifest (perhaps
// renumbered by the uploader after the store's latest): a staged manifest
// in another state is newer, whatever its number and change counter, and
// must be uploaded (status shows it pending).
func TestRegression_NeedsUploadAnyOtherState(t *testing.T) {
	up := stateOf(1001, 6, 500, 7, 1, 1) // renumbered by the copier
	staged := stateOf(700, 3, 700, 9, 1, 2)
	if !NeedsUpload(staged, up) {
		t.Error("NeedsUpload = false for a staged state other than the upload record's")
	}
	same := *up
	same.Seq = 500
	if NeedsUpload(&same, up) {
		t.Error("NeedsUpload = true for the state of the upload record")
	}
}
