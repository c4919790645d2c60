// A WAL commit that grows the database.
//
// copyDirty re-reads a whole chunk when its length changes: in rollback
// mode, bytes past the old end may hold what the VFS did not see written
// (fallocate for size hints). In WAL mode the committed state is the
// composed view (wal.go), in which every page past the old end reads from
// its frame or as the file holds it, and a commit that appends rows grows
// the last chunk at every new page: re-reading the whole chunk each time
// (most of it from older frames and the file) was most of such a commit's
// capture. The pending copy of the chunk is the state the commit started
// from, so the grown tail and the range the commit wrote are enough.

package tracker

// walGrownRange returns the byte range of a chunk to read again when a
// WAL commit grew it from old to n bytes and wrote the range e of it: from
// the start of what it wrote (or the old end) to the new end.
func walGrownRange(e [2]uint32, old, n int) (lo, hi int) {
	return min(int(e[0]), old), n
}
