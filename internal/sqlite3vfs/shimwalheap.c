/*
** shimwalheap.c: WAL mode with the wal-index in heap memory (docs/
** ARCHITECTURE.md, "WAL replication").
**
** A connection in locking_mode=EXCLUSIVE when it opens the WAL (and any
** connection over a VFS without shared memory, which SQLite only lets use
** WAL in exclusive mode) keeps the wal-index in heap memory: no xShm*
** method is called, so shimwal.c never sees the write lock. SQLite takes
** the database's EXCLUSIVE lock before it opens such a WAL and keeps it
** until the WAL closes. The shim pairs the -wal, as it pairs journals,
** with the tracked main file that holds EXCLUSIVE when the -wal opens
** (shimfiles.c); while it is open:
**
**   - writes and truncations of the main file are checkpoints (shim.c
**     passes them through untracked, as while a wal-index is mapped);
**   - COMMIT_PHASETWO of a transaction calls Go once (verneuilGoWALHeap),
**     with EXCLUSIVE held: Go reads the new frames from the -wal itself,
**     validated as SQLite's recovery validates them (internal/tracker/
**     walheap.go).
**
** Go reads the -wal by its path and checks that it is still the inode
** opened (a file put in its place is not the one SQLite writes).
**
** The session number changes when the -wal opens and whenever EXCLUSIVE is
** released: Go trusts what it remembers of the WAL beyond the checksum chain
** (that a restart started from the remembered state) only within one
** session, where no other connection can have written.
**
** A -wal opened while the main file holds less than EXCLUSIVE (normal
** locking) is not paired; one that is paired and then gets a mapped
** wal-index (exclusive locking set after the wal-index was mapped, never in
** heap memory) is handled by shimwal.c, which takes precedence.
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <sys/stat.h>

#include "shim.h"
#include "shimint.h"
#include "_cgo_export.h"

static uint64_t gWalHeapSessions;

static uint64_t newSession(void){
  return __atomic_add_fetch(&gWalHeapSessions, 1, __ATOMIC_RELAXED);
}

/* A -wal opens (vOpen). */
void vshimWalHeapOpen(VFile *pWal, const char *zWal){
  VFile *pMain = vshimPairWal(pWal, zWal);
  if( pMain==0 ) return;
  TRACE("wal opened with EXCLUSIVE held: heap-memory wal-index\n");
  struct stat st;
  pMain->walHeap = 1;
  pMain->walHeapSession = newSession();
  pMain->walHeapIno = stat(zWal, &st)==0 ? (uint64_t)st.st_ino : 0;
}

/* A paired -wal closes (vClose), before it is unlinked. */
void vshimWalHeapClose(VFile *pWal){
  VFile *pMain = vshimPinMainOf(pWal);
  if( pMain==0 ) return;
  pMain->walHeap = 0;
  pMain->walHeapSession = newSession();
  vshimUnpinMain(pMain);
}

/* The main file's lock goes below EXCLUSIVE (tUnlock). */
void vshimWalHeapUnlock(VFile *p, int e){
  if( p->walHeap && e<SQLITE_LOCK_EXCLUSIVE ) p->walHeapSession = newSession();
}

/* COMMIT_PHASETWO of a transaction on a main file whose -wal is open with
** no wal-index mapped: the commit's frames are in the -wal. */
void vshimWalHeapPhaseTwo(VFile *p){
  TRACE("heap-memory WAL commit\n");
  if( vshimForked ){
    vshimMarkRescan(p->zMarker);  /* no Go here: a later capture rescans */
    return;
  }
  if( p->handle==0 ) return;
  if( verneuilGoWALHeap(p->handle, p, (char*)p->zPath, p->walHeapSession, p->walHeapIno, p->ino) ){
    p->wantCheck = 1;
  }
}
