package tracker

import (
	"fmt"
	"os"

	"github.com/verneuil-go/verneuil/internal/names"
	"github.com/verneuil-go/verneuil/internal/spool"
)

// openDB opens the tracker of the database at canon (file key fk),
// replicated as name (its configured name, or "" for the default). m.mu
// is held on entry and on return, and released while the spool is
// created and read: a dozen file operations that every other database's
// captures, opens and closes would otherwise wait for (a process opening
// thousands of databases kept them all waiting). When another connection
// registered a tracker for fk meanwhile, that one is returned, found.
func (m *Manager) openDB(fk, canon, name string) (db *DB, found bool, err error) {
	if name == "" {
		name = names.Replica(m.opts.Hostname, canon)
	}
	key := names.Key(name)
	if db, err := m.collisionLocked(canon, name, key); err != nil {
		return db, false, err
	}
	m.mu.Unlock()
	db, err = m.loadDB(canon, name, key)
	m.mu.Lock()
	if other := m.dbs[fk]; other != nil {
		return other, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	// Checked again: another database may have taken the name meanwhile.
	if cdb, err := m.collisionLocked(canon, name, key); err != nil {
		return cdb, false, err
	}
	db.mapChainIfShared() // chain.go: db is not registered yet
	return db, false, nil
}

// collisionLocked returns, with ErrNameCollision, a disabled tracker for
// the database at canon when another database open in the process has its
// replica name (names maps it to another database's name): sharing one
// spool and key, the replica would alternate between the two files. (The
// same path with another inode is the file replaced under a live
// connection, e.g. by restore: one database, which keeps its replica.)
// m.mu is held.
func (m *Manager) collisionLocked(canon, name, key string) (*DB, error) {
	for _, other := range m.dbs {
		if other.key == key && other.disabled == nil && other.path != canon {
			err := fmt.Errorf("database %s is not replicated: %w with %s, which is open in this process "+
				"(replica name %q); give one of them another name in the configuration's names",
				canon, ErrNameCollision, other.path, name)
			return &DB{m: m, path: canon, name: name, key: key, disabled: err,
				log: m.log.With("db", canon)}, err
		}
	}
	return nil, nil
}

// loadDB creates (if needed) and reads the spool of the database at canon
// and returns its tracker, not yet registered. m.mu is not held.
func (m *Manager) loadDB(canon, name, key string) (*DB, error) {
	sp, err := spool.Open(m.opts.SpoolDir, key, spool.Info{Path: canon, Name: name})
	if err != nil {
		return nil, err
	}
	if check := m.opts.CheckSpool; check != nil {
		if err := check(sp); err != nil {
			m.log.Warn("check the spool's upload record", "db", canon, "err", err)
		}
	}
	db := &DB{m: m, path: canon, name: name, key: key, spool: sp,
		log: m.log.With("db", canon), id: lastDBID.Add(1)}
	if m.opts.WALQueues != nil {
		db.walq = m.opts.WALQueues(db.id)
	}
	// The spool was created for another file that still exists: another
	// process may replicate it under this name (a names collision it
	// cannot see), or it is a copy left behind by a move. Only a warning:
	// a copy is harmless and refusing would stop replication.
	if info, err := sp.Info(); err == nil && info.Path != "" && info.Path != canon {
		if fo, err := os.Stat(info.Path); err == nil {
			if fc, err := os.Stat(canon); err == nil && !os.SameFile(fo, fc) {
				db.log.Warn("replica name collision? another database file has this replica name; if both are written, "+
					"the replica alternates between them: give one of them another name in the configuration's names",
					"name", name, "other", info.Path)
			}
		}
	}
	// Start from the staged manifest when it is sound; otherwise the first
	// capture rescans the file.
	if man, _, err := sp.Manifest(); err != nil {
		db.log.Warn("ignoring damaged spool manifest; the database will be rescanned", "err", err)
	} else if man != nil && int(man.ChunkSize) == m.opts.ChunkSize {
		db.setBaseLocked(man)
		db.lastID = man.VersionID
		db.lastLen = man.Length
		db.lastSeq = man.Seq
	}
	// Continue numbering after the last upload, which the copier may have
	// renumbered after the store's latest (clock skew).
	if up, _, err := sp.Uploaded(); err == nil && up != nil {
		db.lastSeq = max(db.lastSeq, up.Seq)
	}
	return db, nil
}
