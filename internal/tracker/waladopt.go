// Adoption by WAL position (docs/ARCHITECTURE.md, "WAL replication").
//
// A WAL commit whose starting position the tracker does not remember (the
// first commit of a process, or one after the tracker forgot the
// database) would copy the whole state under the WAL write lock. When the
// spool's manifest records exactly that starting position instead, it is
// adopted: the page -> frame map of the generation is rebuilt by reading
// and validating frames 1..mxFrame of the position (salts, the unbroken
// checksum chain ending at the header's checksums, the commit size), and
// the manifest's version id is compared with the identity of that state
// (inode, WAL position, header bytes read through the frames; from the
// file when this commit restarted the WAL, as SQLite restarts only a WAL
// whose every frame is in the database file). Any doubt
// (another generation in the -wal, a broken chain, another inode, header
// or length, a spool that asked for a rescan, a failed build) refuses,
// and the capture rescans as before.

package tracker

import (
	"io"
	"sync/atomic"
)

// walAdopted and walRescanned count WAL captures that adopted the spool's
// manifest by its WAL position and those that copied the whole state.
var walAdopted, walRescanned atomic.Int64

// WALCounts returns how many WAL captures of this process adopted the
// spool's manifest by WAL position, and how many rescanned: tests and
// benchmarks.
func WALCounts() (adopted, rescanned int64) { return walAdopted.Load(), walRescanned.Load() }

// walAdopt returns the state at prior, the wal-index header when the WAL
// write lock was granted, made the base when the spool's manifest is that
// state; nil when it is not, or cannot be proven to be. now is the header
// at the release of the lock. The WAL write lock is held: frames
// 1..prior.mx are immutable unless this hold restarted the WAL.
func (db *DB) walAdopt(src Source, wal io.ReaderAt, prior, now walPos, ino uint64) *walState {
	if prior.mx == 0 {
		return nil // no WAL position is recorded for an empty generation
	}
	header := make([]byte, HeaderLen)
	var st *walState
	if prior.salt != now.salt {
		// This hold restarted the WAL (its frames from 1 are overwritten):
		// SQLite restarts only a WAL whose every frame is in the database
		// file, so the file is the state at prior, as for a witnessed
		// restart. Its header must then give the manifest's identity.
		if err := src.ReadAt(header, 0); err != nil {
			return nil
		}
		st = &walState{pos: prior, frames: map[uint32]uint32{}}
	} else {
		start, err := walGenerationStart(wal, prior)
		if err != nil {
			return nil
		}
		st = &walState{pos: start, frames: map[uint32]uint32{}}
		if _, err := st.extend(wal, prior); err != nil {
			db.log.Debug("WAL frames do not prove the starting position; not adopting", "err", err)
			return nil
		}
		if err := (&walView{file: src, wal: wal, st: st}).ReadAt(header, 0); err != nil {
			return nil
		}
	}
	id := identity(ino, prior.id(), header)
	unlock, err := db.lockForCapture()
	if err != nil {
		return nil
	}
	defer unlock()
	man, _, err := db.spool.Manifest()
	if err != nil || man == nil || man.Length != int64(prior.nPage)*int64(prior.pageSize) {
		return nil
	}
	if !db.adoptLocked(id) {
		return nil
	}
	walAdopted.Add(1)
	db.log.Debug("adopted the spool's manifest by its WAL position", "mxFrame", prior.mx)
	return st
}
