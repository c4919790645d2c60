/*
** shim.c: the verneuil replicating VFS, a thin wrapper over SQLite's "unix"
** VFS.
**
** Every VFS and io method delegates to the wrapped unix implementation, so the
** bytes on disk, the POSIX advisory locks and the error behaviour are unix's.
** Only the main database file of a connection (with a name, not nolock, not
** immutable) gets capturing io methods:
**
**   - xWrite/xTruncate record which fixed-size chunks became dirty in a bitmap;
**     no Go code runs per page.
**   - Before the first write of a transaction, the file's version id (a user
**     xattr) and its 100-byte header are remembered and a new version id is
**     written, so that writers that bypass this VFS can be recognised later.
**   - SQLITE_FCNTL_COMMIT_PHASETWO, which SQLite sends after the journal is
**     finalised (the transaction is durable) and before it unlocks, marks the
**     transaction as committed.
**   - At xUnlock down to SHARED or NONE, the shim first downgrades the real
**     lock to SHARED and then calls Go exactly once while SHARED is held: no
**     other process can change the file, so Go reads one committed state.
**   - With locking_mode=EXCLUSIVE there is no unlock between transactions:
**     the capture then happens at COMMIT_PHASETWO itself (once the mode is
**     known from PRAGMA locking_mode, or from seeing a committed transaction
**     followed by another write without an unlock), or at close.
**
** Transactions that wrote but never reached COMMIT_PHASETWO (rollbacks, hot
** journal playback, I/O errors) capture nothing; Go is told so that it
** rescans from scratch next time.
**
** A journal is paired with the tracked main file of its own connection: the
** one holding at least RESERVED when the journal is opened or deleted (a
** nolock connection, which is not tracked, never gets another connection's
** main file). The journal's pointer to its main file is cleared, under
** gListMutex, when the main file closes, and is pinned while used, so the
** main file's close waits for a finalisation in progress.
**
** In a child forked without exec the Go runtime is gone and nothing is
** captured. The first write of each transaction there creates the empty
** file VSHIM_RESCAN_MARKER in the database's spool directory (which Go
** passed when the parent registered the database), so that the parent or a
** later process rescans it.
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "shim.h"
#include "shimint.h"
#include "_cgo_export.h"


static sqlite3_vfs *gOrig = 0;        /* the wrapped "unix" VFS */
static sqlite3_vfs gVfs;              /* the "verneuil" VFS */
static char gVfsName[64];             /* its name */
static int gChunkShift = 16;
static uint64_t gProcessId[1];        /* random per-process part of version ids */
static uint64_t gIdCounter = 0;
static uint64_t gLastSeq = 0;
static vshim_stats gStats;

static const sqlite3_io_methods gPassIo;
static const sqlite3_io_methods gTrackIo;
static const sqlite3_io_methods gJournalIo;

/* ---------------------------------------------------------------- helpers */

static uint64_t nowNanos(void){
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec*1000000000ull + (uint64_t)ts.tv_nsec;
}

static void putBE64(unsigned char *p, uint64_t v){
  int i;
  for(i=7; i>=0; i--){ p[i] = (unsigned char)(v & 0xff); v >>= 8; }
}
static uint64_t getBE64(const unsigned char *p){
  uint64_t v = 0; int i;
  for(i=0; i<8; i++) v = (v<<8) | p[i];
  return v;
}

static int readXattr(VFile *p, unsigned char *buf, int cap){
  ssize_t n;
  if( p->xattrUnsupported ) return -1;
  if( p->fd>=0 ){
    n = fgetxattr(p->fd, VSHIM_XATTR_NAME, buf, cap);
  }else{
    n = getxattr(p->zPath, VSHIM_XATTR_NAME, buf, cap);
  }
  if( n<0 ){
    if( errno==ENODATA ) return 0;
    if( errno==ENOTSUP ) p->xattrUnsupported = 1;
    return -1;
  }
  return (int)n;
}

static int writeXattr(VFile *p, const unsigned char *buf, int n){
  int rc;
  if( p->xattrUnsupported ) return -1;
  if( p->fd>=0 ){
    rc = fsetxattr(p->fd, VSHIM_XATTR_NAME, buf, n, 0);
  }else{
    rc = setxattr(p->zPath, VSHIM_XATTR_NAME, buf, n, 0);
  }
  if( rc!=0 ){
    if( errno==ENOTSUP ) p->xattrUnsupported = 1;
    __atomic_fetch_add(&gStats.xattrErrors, 1, __ATOMIC_RELAXED);
  }
  return rc;
}

/* extendExtent widens the written range of dirty entry i to [lo, hi). */
static void extendExtent(VFile *p, int i, uint32_t lo, uint32_t hi){
  if( p->aExtent==0 ) return;
  if( lo<p->aExtent[2*i] ) p->aExtent[2*i] = lo;
  if( hi>p->aExtent[2*i+1] ) p->aExtent[2*i+1] = hi;
}

/* markDirty records that [off, off+n) was written: the chunks it covers
** join the dirty list, and the range within each chunk its extent. */
static void markDirty(VFile *p, int64_t off, int64_t n){
  int64_t first, last, c;
  int64_t cs = (int64_t)1 << gChunkShift;
  if( n<=0 || off<0 ) return;
  first = off >> gChunkShift;
  last = (off + n - 1) >> gChunkShift;
  for(c=first; c<=last; c++){
    int64_t byte = c >> 3;
    int bit = 1 << (c & 7);
    int64_t base = c << gChunkShift;
    uint32_t lo = (uint32_t)((off>base ? off : base) - base);
    uint32_t hi = (uint32_t)((off+n<base+cs ? off+n : base+cs) - base);
    if( byte>=p->nBitsBytes ){
      int64_t nNew = p->nBitsBytes ? p->nBitsBytes : 64;
      unsigned char *aNew;
      while( nNew<=byte ) nNew *= 2;
      aNew = realloc(p->aBits, (size_t)nNew);  /* libc: private, no SQLite fault injection */
      if( aNew==0 ){ p->dirtyLost = 1; return; }  /* OOM: Go rescans */
      memset(aNew + p->nBitsBytes, 0, nNew - p->nBitsBytes);
      p->aBits = aNew; p->nBitsBytes = nNew;
    }
    if( p->aBits[byte] & bit ){
      /* Already dirty: SQLite writes a transaction's pages in page order,
      ** so the entry is almost always among the last few; otherwise give
      ** up on extents for this transaction (whole chunks are re-read). */
      int i, found = 0;
      for(i=p->nDirty-1; i>=0 && i>=p->nDirty-16; i--){
        if( p->aDirty[i]==(uint32_t)c ){ extendExtent(p, i, lo, hi); found = 1; break; }
      }
      if( !found ) p->extentsLost = 1;
      continue;
    }
    if( p->nDirty>=p->nDirtyAlloc ){
      int nNew = p->nDirtyAlloc ? p->nDirtyAlloc*2 : 64;
      uint32_t *aNew = realloc(p->aDirty, (size_t)nNew*sizeof(uint32_t));
      uint32_t *aExt;
      if( aNew==0 ){ p->dirtyLost = 1; return; }
      p->aDirty = aNew;
      /* Extents grow with the list; once an allocation failed, the file
      ** goes without them (whole chunks are re-read). */
      if( p->aExtent!=0 || p->nDirtyAlloc==0 ){
        aExt = realloc(p->aExtent, (size_t)nNew*2*sizeof(uint32_t));
        if( aExt==0 ) free(p->aExtent);
        p->aExtent = aExt;
      }
      p->nDirtyAlloc = nNew;
    }
    p->aBits[byte] |= bit;
    if( p->aExtent ){
      p->aExtent[2*p->nDirty] = lo;
      p->aExtent[2*p->nDirty+1] = hi;
    }
    p->aDirty[p->nDirty++] = (uint32_t)c;
  }
}

static void resetTxn(VFile *p){
  int i;
  for(i=0; i<p->nDirty; i++){
    uint32_t c = p->aDirty[i];
    p->aBits[c>>3] &= ~(1 << (c & 7));
  }
  p->nDirty = 0;
  p->extentsLost = 0;
  p->txnStarted = 0;
  p->committed = 0;
  p->dirtyLost = 0;
}

/* Hand the transaction to Go. Called with at least SHARED held. */
static void capture(VFile *p, int kind){
  if( kind==VSHIM_COMMIT && p->dirtyLost ) kind = VSHIM_RESCAN;
  if( vshimForked ){ resetTxn(p); return; }
  TRACE("capture kind=%d dirty=%d lock=%d\n", kind, p->nDirty, p->lockLevel);
  if( kind==VSHIM_COMMIT ){
    __atomic_fetch_add(&gStats.commits, 1, __ATOMIC_RELAXED);
  }else if( kind==VSHIM_ROLLBACK ){
    __atomic_fetch_add(&gStats.rollbacks, 1, __ATOMIC_RELAXED);
  }
  /* Go asks for a Check at the next read transaction when the capture
  ** failed or left a sliced copy running. */
  if( verneuilGoCapture(p->handle, p, kind, p->aDirty,
      (p->extentsLost || p->aExtent==0) ? 0 : p->aExtent, p->nDirty,
      p->preXattr, p->preXattrLen, p->preHeader,
      p->postXattr, p->postXattrLen, p->seq, p->ino) ){
    p->wantCheck = 1;
  }
  resetTxn(p);
}

/* The shim's own reads use the descriptor directly when it is known, so
** that they neither consume nor suffer SQLite's simulated I/O faults (the
** unix methods are the fallback). */
static int readHeader(VFile *p, unsigned char *buf){
  if( p->fd>=0 ){
    ssize_t n = pread(p->fd, buf, VSHIM_HEADER_LEN, 0);
    if( n<0 ) return SQLITE_IOERR_READ;
    if( n<VSHIM_HEADER_LEN ) memset(buf+n, 0, VSHIM_HEADER_LEN-n);
    return SQLITE_OK;
  }else{
    int rc = p->pReal->pMethods->xRead(p->pReal, buf, VSHIM_HEADER_LEN, 0);
    return rc==SQLITE_IOERR_SHORT_READ ? SQLITE_OK : rc;
  }
}

static int fileSize(VFile *p, sqlite3_int64 *pSize){
  if( p->fd>=0 ){
    struct stat st;
    if( fstat(p->fd, &st)!=0 ) return SQLITE_IOERR_FSTAT;
    *pSize = st.st_size;
    return SQLITE_OK;
  }
  return p->pReal->pMethods->xFileSize(p->pReal, pSize);
}

/* First write of a transaction: remember the identity of the committed state
** the transaction starts from, and stamp a new version id on the file. */
static void beginTxn(VFile *p){
  uint64_t seq, prevSeq = 0, last, ctr;
  int rc;
  if( p->committed ){
    /* A committed transaction was never followed by an unlock: the
    ** connection is in locking_mode=EXCLUSIVE. Capture it now (the file
    ** holds that committed state), and capture at commit from now on. */
    p->exclusiveMode = 1;
    capture(p, VSHIM_COMMIT);
  }
  p->txnStarted = 1;
  p->preXattrLen = readXattr(p, p->preXattr, VSHIM_XATTR_LEN);
  if( p->preXattrLen<0 ) p->preXattrLen = 0;
  memset(p->preHeader, 0, VSHIM_HEADER_LEN);
  rc = readHeader(p, p->preHeader);
  if( rc!=SQLITE_OK ){
    memset(p->preHeader, 0xff, VSHIM_HEADER_LEN);  /* matches nothing */
  }
  if( p->preXattrLen==VSHIM_XATTR_LEN ) prevSeq = getBE64(p->preXattr);
  /* seq = max(prev+1, now, last+1): monotonic across processes through the
  ** xattr, and across file replacement through the clock. */
  seq = nowNanos();
  if( prevSeq+1>seq ) seq = prevSeq+1;
  last = __atomic_load_n(&gLastSeq, __ATOMIC_RELAXED);
  if( last+1>seq ) seq = last+1;
  __atomic_store_n(&gLastSeq, seq, __ATOMIC_RELAXED);
  p->seq = seq;
  ctr = __atomic_add_fetch(&gIdCounter, 1, __ATOMIC_RELAXED);
  putBE64(p->postXattr, seq);
  putBE64(p->postXattr+8, gProcessId[0]);
  putBE64(p->postXattr+16, ctr);
  p->postXattrLen = VSHIM_XATTR_LEN;
  if( writeXattr(p, p->postXattr, VSHIM_XATTR_LEN)!=0 ){
    p->postXattrLen = 0;
  }
}

/* Is there a hot journal next to the database? (Called with SHARED held.) */
static int hasHotJournal(VFile *p){
  static const unsigned char magic[8] = {0xd9,0xd5,0x05,0xf9,0x20,0xa1,0x63,0xd7};
  unsigned char buf[8];
  size_t n = strlen(p->zPath) + sizeof("-journal");
  char *zJ = malloc(n);
  int fd, hot = 0;
  if( zJ==0 ) return 1;  /* OOM: assume the worst */
  snprintf(zJ, n, "%s-journal", p->zPath);
  fd = open(zJ, O_RDONLY|O_CLOEXEC);
  if( fd>=0 ){
    hot = pread(fd, buf, 8, 0)==8 && memcmp(buf, magic, 8)==0;
    close(fd);
  }
  free(zJ);
  return hot;
}

/* The journal of a tracked main file was finalised (deleted, truncated or
** its header zeroed): the main file holds a committed state, either the
** new one or, after a rollback, the old one. Outside exclusive locking mode
** the unlock that follows captures it. */
static void journalFinalized(VFile *pMain){
  if( pMain==0 ) return;
  TRACE("journal finalized excl=%d txn=%d dirty=%d\n", pMain->exclusiveMode, pMain->txnStarted, pMain->nDirty);
  if( pMain->exclusiveMode && (pMain->txnStarted || pMain->nDirty>0)
   && pMain->lockLevel>=SQLITE_LOCK_SHARED ){
    capture(pMain, VSHIM_COMMIT);
  }
}

/* ------------------------------------------------------- Go-facing helpers */

int vshim_read(void *pFile, void *buf, int n, int64_t off){
  VFile *p = (VFile*)pFile;
  return p->pReal->pMethods->xRead(p->pReal, buf, n, off);
}

int64_t vshim_size(void *pFile){
  VFile *p = (VFile*)pFile;
  sqlite3_int64 sz = 0;
  if( p->pReal->pMethods->xFileSize(p->pReal, &sz)!=SQLITE_OK ) return -1;
  return sz;
}

int vshim_get_xattr(void *pFile, unsigned char *buf, int cap){
  return readXattr((VFile*)pFile, buf, cap);
}

int vshim_lock_level(void *pFile){
  return ((VFile*)pFile)->lockLevel;
}

sqlite3_vfs *vshimOrigVfs(void){ return gOrig; }

void vshim_get_stats(vshim_stats *out){
  out->commits = __atomic_load_n(&gStats.commits, __ATOMIC_RELAXED);
  out->rollbacks = __atomic_load_n(&gStats.rollbacks, __ATOMIC_RELAXED);
  out->checks = __atomic_load_n(&gStats.checks, __ATOMIC_RELAXED);
  out->xattrErrors = __atomic_load_n(&gStats.xattrErrors, __ATOMIC_RELAXED);
  out->journalsPaired = __atomic_load_n(&gStats.journalsPaired, __ATOMIC_RELAXED);
  out->sliceHolds = vshimSliceHolds();
  vshimWalStats(out);
}

/* ------------------------------------------------------- closing */

static void endCaptureHold(VFile *p);

static int vClose(sqlite3_file *f){
  VFile *p = (VFile*)f;
  int rc;
  if( p->handle ){
    vshimUnlinkMain(p);
    if( p->committed && p->lockLevel>=SQLITE_LOCK_SHARED ){
      capture(p, VSHIM_COMMIT);
    }
    if( !vshimForked ) verneuilGoClose(p->handle);
    vshimWalQDetach(p);
    p->handle = 0;
  }else if( p->isJournal ){
    if( p->isPairedWal ) vshimWalHeapClose(p);
    vshimUnlinkJournal(p);
  }
  rc = p->pReal->pMethods->xClose(p->pReal);
  endCaptureHold(p);
  free(p->aBits);
  free(p->aDirty);
  free(p->aExtent);
  p->aBits = 0; p->aDirty = 0; p->aExtent = 0;
  return rc;
}
/* ------------------------------------------------------- capturing io */

/* The first write of a transaction (tWrite, tTruncate). */
static void startTxn(VFile *p){
  if( vshimForked ) vshimMarkRescan(p->zMarker);
  beginTxn(p);
}

static int tWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  VFile *p = (VFile*)f;
  int rc;
  if( p->walOpen || p->walHeap ) return vshimWrite(f, b, n, o);  /* a checkpoint (shimwal*.c) */
  if( !p->txnStarted ) startTxn(p);
  TRACE("write off=%lld n=%d\n", (long long)o, n);
  rc = p->pReal->pMethods->xWrite(p->pReal, b, n, o);
  markDirty(p, o, n);  /* even on error: a partial write may have landed */
  return rc;
}

static int tTruncate(sqlite3_file *f, sqlite3_int64 sz){
  VFile *p = (VFile*)f;
  sqlite3_int64 old = 0;
  int rc;
  if( p->walOpen || p->walHeap ) return vshimTruncate(f, sz);  /* a checkpoint (shimwal*.c) */
  if( !p->txnStarted ) startTxn(p);
  if( fileSize(p, &old)!=SQLITE_OK ) old = sz;
  TRACE("truncate %lld -> %lld\n", (long long)old, (long long)sz);
  rc = p->pReal->pMethods->xTruncate(p->pReal, sz);
  if( old>sz ) markDirty(p, sz, old-sz); else markDirty(p, old, sz-old);
  if( sz>0 ) markDirty(p, sz-1, 1);   /* the chunk holding the new end */
  return rc;
}

/* Ends the lingering hold of p's last capture (see vshimHoldLinger). */
static void endCaptureHold(VFile *p){
  if( p->capHoldLinger ){
    p->capHoldLinger = 0;
    vshimHoldEnd(&p->capHold, 1);
  }
}

static int tUnlock(sqlite3_file *f, int e){
  VFile *p = (VFile*)f;
  sqlite3_file *r = p->pReal;
  int rc = SQLITE_OK;
  int kind = 0;
  TRACE("unlock %d -> %d committed=%d txn=%d dirty=%d\n", p->lockLevel, e, p->committed, p->txnStarted, p->nDirty);
  vshimWalHeapUnlock(p, e);
  if( e<=SQLITE_LOCK_SHARED && p->lockLevel>=SQLITE_LOCK_SHARED ){
    if( p->committed ){
      kind = VSHIM_COMMIT;
    }else if( p->txnStarted || p->nDirty>0 ){
      /* Written but not committed: a rollback (or a failure). Once the
      ** rollback completed, the file holds a committed state again, whose
      ** bytes may differ from the old ones in free pages: capture it.
      ** With a hot journal left behind, capture nothing. */
      kind = hasHotJournal(p) ? VSHIM_ROLLBACK : VSHIM_COMMIT;
    }else if( p->wantCheck && !vshimForked ){
      kind = VSHIM_CHECK;
    }
  }
  if( kind==0 ){
    rc = r->pMethods->xUnlock(r, e);
    if( rc==SQLITE_OK ) p->lockLevel = e;
    /* after the unlock: a waiter woken now finds the file free */
    if( p->lockLevel<SQLITE_LOCK_SHARED ) endCaptureHold(p);
    return rc;
  }
  /* Downgrade to SHARED first: other writers are now blocked from
  ** committing, readers proceed, and the file holds one committed state.
  ** Their EXCLUSIVE waits for the capture (hold) instead of failing. A
  ** hold still lingering from the last capture is taken over. */
  p->capHoldLinger = 0;
  vshimHoldBegin(&p->capHold, p->ino);
  if( p->lockLevel>SQLITE_LOCK_SHARED ){
    rc = r->pMethods->xUnlock(r, SQLITE_LOCK_SHARED);
    if( rc==SQLITE_OK ) p->lockLevel = SQLITE_LOCK_SHARED;
  }
  if( rc==SQLITE_OK ){
    if( kind==VSHIM_CHECK ){
      __atomic_fetch_add(&gStats.checks, 1, __ATOMIC_RELAXED);
      p->wantCheck = verneuilGoCapture(p->handle, p, VSHIM_CHECK, 0, 0, 0,
          0, 0, 0, 0, 0, 0, p->ino)!=0;
    }else{
      capture(p, kind);
    }
  }else if( kind!=VSHIM_CHECK ){
    /* Could not downgrade: the state is unknown, let Go rescan later. */
    if( !vshimForked ){
      verneuilGoCapture(p->handle, p, VSHIM_ROLLBACK, 0, 0, 0, 0, 0, 0, 0, 0, 0, p->ino);
    }
    resetTxn(p);
  }
  if( e<SQLITE_LOCK_SHARED ){
    int rc2 = r->pMethods->xUnlock(r, e);
    if( rc2==SQLITE_OK ) p->lockLevel = e;
    if( rc==SQLITE_OK ) rc = rc2;
  }
  if( p->lockLevel>=SQLITE_LOCK_SHARED && !vshimForked ){
    /* The connection keeps SHARED, usually until its unlock to NONE that
    ** comes right after this one. */
    vshimHoldLinger(&p->capHold);
    p->capHoldLinger = 1;
  }else{
    vshimHoldEnd(&p->capHold, 1);
  }
  return rc;
}

static int tFileControl(sqlite3_file *f, int op, void *pArg){
  VFile *p = (VFile*)f;
  TRACE("fcntl %d\n", op);
  if( op==SQLITE_FCNTL_COMMIT_PHASETWO ){
    TRACE("phasetwo txn=%d dirty=%d excl=%d\n", p->txnStarted, p->nDirty, p->exclusiveMode);
    if( p->walOpen ){
      vshimWalPhaseTwo(p);
    }else if( p->walHeap ){
      vshimWalHeapPhaseTwo(p);
    }
    if( p->txnStarted || p->nDirty>0 ){
      p->committed = 1;
      if( p->exclusiveMode ) capture(p, VSHIM_COMMIT);
    }
  }else if( op==SQLITE_FCNTL_SYNC ){
    /* Without a journal file there is no finalisation to observe: in
    ** exclusive locking mode, the sync that ends a commit's writes or a
    ** rollback's playback is where the file holds a committed state. */
    if( p->exclusiveMode && p->journalInMemory && (p->txnStarted || p->nDirty>0)
     && pArg==0 ){
      capture(p, VSHIM_COMMIT);
    }
  }else if( op==SQLITE_FCNTL_PRAGMA ){
    char **a = (char**)pArg;
    const char *zName = a[1], *zVal = a[2];
    if( sqlite3_stricmp(zName, "journal_mode")==0 && zVal ){
      p->journalInMemory = sqlite3_stricmp(zVal, "memory")==0
                        || sqlite3_stricmp(zVal, "off")==0;
    }
    if( sqlite3_stricmp(zName, "locking_mode")==0 && zVal ){
      if( sqlite3_stricmp(zVal, "exclusive")==0 ){
        p->exclusiveMode = 1;
        p->walUnlockSeen = 0;
      }
      /* SQLite stays in exclusive mode while its wal-index is in heap
      ** memory (sqlite3PagerLockingMode). */
      if( sqlite3_stricmp(zVal, "normal")==0 && !p->walHeap ) p->exclusiveMode = 0;
    }
    if( sqlite3_strnicmp(zName, "verneuil_", 9)==0 ){
      char *zOut = 0;
      int rc;
      if( p->committed && p->lockLevel>=SQLITE_LOCK_SHARED ){
        capture(p, VSHIM_COMMIT);
      }
      if( vshimForked ){
        a[0] = sqlite3_mprintf("verneuil: not available in a child process forked without exec");
        return SQLITE_ERROR;
      }
      rc = verneuilGoPragma(p->handle, p, (char*)zName, (char*)zVal, &zOut);
      if( zOut ){
        a[0] = sqlite3_mprintf("%s", zOut);
        free(zOut);
      }
      return rc;
    }
  }
  return vshimFileControl(f, op, pArg);
}

static int jWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  VFile *p = (VFile*)f;
  int rc = p->pReal->pMethods->xWrite(p->pReal, b, n, o);
  if( rc==SQLITE_OK && o==0 && n>=28 ){
    const unsigned char *z = (const unsigned char*)b;
    int i, zero = 1;
    for(i=0; i<n && zero; i++) zero = z[i]==0;
    if( zero ){
      VFile *pMain = vshimPinMainOf(p);
      if( pMain ){
        journalFinalized(pMain);
        vshimUnpinMain(pMain);
      }
    }
  }
  return rc;
}
static int jTruncate(sqlite3_file *f, sqlite3_int64 sz){
  VFile *p = (VFile*)f;
  int rc = p->pReal->pMethods->xTruncate(p->pReal, sz);
  if( rc==SQLITE_OK && sz==0 ){
    VFile *pMain = vshimPinMainOf(p);
    if( pMain ){
      journalFinalized(pMain);
      vshimUnpinMain(pMain);
    }
  }
  return rc;
}

/* A database opened in a forked child (no Go, nothing captured) that Go
** registered in the parent: the first write of each transaction leaves the
** rescan marker. txnStarted is reset by the unlock or commit that ends it. */
static int fWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  VFile *p = (VFile*)f;
  if( !p->txnStarted ){ p->txnStarted = 1; vshimMarkRescan(p->zMarker); }
  return p->pReal->pMethods->xWrite(p->pReal, b, n, o);
}
static int fTruncate(sqlite3_file *f, sqlite3_int64 sz){
  VFile *p = (VFile*)f;
  if( !p->txnStarted ){ p->txnStarted = 1; vshimMarkRescan(p->zMarker); }
  return p->pReal->pMethods->xTruncate(p->pReal, sz);
}
static int fUnlock(sqlite3_file *f, int e){
  VFile *p = (VFile*)f;
  if( e<=SQLITE_LOCK_SHARED ) p->txnStarted = 0;
  return vshimUnlock(f, e);
}
static int fFileControl(sqlite3_file *f, int op, void *pArg){
  VFile *p = (VFile*)f;
  if( op==SQLITE_FCNTL_COMMIT_PHASETWO ) p->txnStarted = 0;
  return vshimFileControl(f, op, pArg);
}

static const sqlite3_io_methods gPassIo = {
  3, vClose, vshimRead, vshimWrite, vshimTruncate, vshimSync, vshimFileSize, vshimLock, vshimUnlock,
  vshimCheckReservedLock, vshimFileControl, vshimSectorSize, vshimDeviceCharacteristics,
  vshimShmMap, vshimShmLock, vshimShmBarrier, vshimShmUnmap, vshimFetch, vshimUnfetch
};

static const sqlite3_io_methods gJournalIo = {
  3, vClose, vshimRead, jWrite, jTruncate, vshimSync, vshimFileSize, vshimLock, vshimUnlock,
  vshimCheckReservedLock, vshimFileControl, vshimSectorSize, vshimDeviceCharacteristics,
  vshimShmMap, vshimShmLock, vshimShmBarrier, vshimShmUnmap, vshimFetch, vshimUnfetch
};

static const sqlite3_io_methods gForkIo = {
  3, vClose, vshimRead, fWrite, fTruncate, vshimSync, vshimFileSize, vshimLock, fUnlock,
  vshimCheckReservedLock, fFileControl, vshimSectorSize, vshimDeviceCharacteristics,
  vshimShmMap, vshimShmLock, vshimShmBarrier, vshimShmUnmap, vshimFetch, vshimUnfetch
};

static const sqlite3_io_methods gTrackIo = {
  3, vClose, vshimRead, tWrite, tTruncate, vshimSync, vshimFileSize, vshimLock, tUnlock,
  vshimCheckReservedLock, tFileControl, vshimSectorSize, vshimDeviceCharacteristics,
  vshimWalShmMap, vshimWalShmLock, vshimShmBarrier, vshimWalShmUnmap, vshimFetch, vshimUnfetch
};

/* ------------------------------------------------------- the VFS */

/* unix keeps its file descriptor right after three pointers in unixFile
** (pMethod, pVfs, pInode). Use it only when fstat proves it is this file. */
int vshimFindFd(sqlite3_file *pReal, const char *zPath){
  int fd = *(int*)((char*)pReal + 3*sizeof(void*));
  struct stat a, b;
  if( fd<0 ) return -1;
  if( fstat(fd, &a)!=0 || stat(zPath, &b)!=0 ) return -1;
  if( a.st_dev!=b.st_dev || a.st_ino!=b.st_ino ) return -1;
  return fd;
}

static int vOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *f,
                 int flags, int *pOutFlags){
  VFile *p = (VFile*)f;
  int rc;
  int outFlags = 0;
  (void)pVfs;
  memset(p, 0, sizeof(*p));
  p->pReal = (sqlite3_file*)&p[1];
  p->fd = -1;
  rc = gOrig->xOpen(gOrig, zName, p->pReal, flags, &outFlags);
  if( pOutFlags ) *pOutFlags = outFlags;
  if( p->pReal->pMethods==0 ){
    p->base.pMethods = 0;
    return rc;
  }
  p->base.pMethods = &gPassIo;
  if( rc!=SQLITE_OK ) return rc;
  if( zName && (flags & SQLITE_OPEN_MAIN_DB)
   && !(flags & SQLITE_OPEN_DELETEONCLOSE)
   && !sqlite3_uri_boolean(zName, "nolock", 0)
   && !sqlite3_uri_boolean(zName, "immutable", 0) && vshimForked ){
    p->zMarker = vshimFindMarker(zName);
    if( p->zMarker ) p->base.pMethods = &gForkIo;
  }else if( zName && (flags & SQLITE_OPEN_MAIN_DB)
   && !(flags & SQLITE_OPEN_DELETEONCLOSE)
   && !sqlite3_uri_boolean(zName, "nolock", 0)
   && !sqlite3_uri_boolean(zName, "immutable", 0) ){
    char *zSpool = 0;
    uint64_t dbID = 0;
    uint64_t h = verneuilGoOpen((char*)zName, &zSpool, &dbID);
    if( zSpool ){
      if( h ) p->zMarker = vshimRegisterMarker(zName, zSpool);
      free(zSpool);
    }
    if( h ){
      p->handle = h;
      p->zPath = zName;
      p->fd = vshimFindFd(p->pReal, zName);
      {
        struct stat st;
        if( (p->fd>=0 ? fstat(p->fd, &st) : stat(zName, &st))==0 ) p->ino = (uint64_t)st.st_ino;
      }
      p->wantCheck = 1;
      p->readOnly = (outFlags & SQLITE_OPEN_READONLY)!=0;
      p->nPath = (int)strlen(zName);
      p->base.pMethods = &gTrackIo;
      vshimWalQAttach(p, dbID);
      vshimLinkMain(p);
    }
  }else if( zName && (flags & SQLITE_OPEN_MAIN_JOURNAL) ){
    if( vshimLinkJournal(p, zName) ){
      p->base.pMethods = &gJournalIo;
      __atomic_fetch_add(&gStats.journalsPaired, 1, __ATOMIC_RELAXED);
    }
  }else if( zName && (flags & SQLITE_OPEN_WAL) ){
    vshimLinkWal(p, zName);     /* shimwalfile.c: its own io methods */
    vshimWalHeapOpen(p, zName); /* shimwalheap.c: paired when EXCLUSIVE is held */
  }
  return rc;
}

static int vDelete(sqlite3_vfs *v, const char *z, int syncDir){
  int rc;
  (void)v;
  rc = gOrig->xDelete(gOrig, z, syncDir);
  if( rc==SQLITE_OK && z ){
    VFile *pMain = vshimPinMainOfJournal(z);
    if( pMain ){
      journalFinalized(pMain);
      vshimUnpinMain(pMain);
    }
  }
  return rc;
}
static int vAccess(sqlite3_vfs *v, const char *z, int flags, int *pOut){
  (void)v; return gOrig->xAccess(gOrig, z, flags, pOut);
}
static int vFullPathname(sqlite3_vfs *v, const char *z, int n, char *zOut){
  (void)v; return gOrig->xFullPathname(gOrig, z, n, zOut);
}
static void *vDlOpen(sqlite3_vfs *v, const char *z){
  (void)v; return gOrig->xDlOpen(gOrig, z);
}
static void vDlError(sqlite3_vfs *v, int n, char *z){
  (void)v; gOrig->xDlError(gOrig, n, z);
}
static void (*vDlSym(sqlite3_vfs *v, void *h, const char *z))(void){
  (void)v; return gOrig->xDlSym(gOrig, h, z);
}
static void vDlClose(sqlite3_vfs *v, void *h){
  (void)v; gOrig->xDlClose(gOrig, h);
}
static int vRandomness(sqlite3_vfs *v, int n, char *z){
  (void)v; return gOrig->xRandomness(gOrig, n, z);
}
static int vSleep(sqlite3_vfs *v, int us){
  (void)v; return gOrig->xSleep(gOrig, us);
}
static int vCurrentTime(sqlite3_vfs *v, double *p){
  (void)v; return gOrig->xCurrentTime(gOrig, p);
}
static int vGetLastError(sqlite3_vfs *v, int n, char *z){
  (void)v; return gOrig->xGetLastError ? gOrig->xGetLastError(gOrig, n, z) : 0;
}
static int vCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *p){
  (void)v; return gOrig->xCurrentTimeInt64(gOrig, p);
}
static int vSetSystemCall(sqlite3_vfs *v, const char *z, sqlite3_syscall_ptr f){
  (void)v; return gOrig->xSetSystemCall(gOrig, z, f);
}
static sqlite3_syscall_ptr vGetSystemCall(sqlite3_vfs *v, const char *z){
  (void)v; return gOrig->xGetSystemCall(gOrig, z);
}
static const char *vNextSystemCall(sqlite3_vfs *v, const char *z){
  (void)v; return gOrig->xNextSystemCall(gOrig, z);
}

int vshim_register(const char *zName, int makeDefault, int chunkShift){
  if( gOrig==0 ){
    sqlite3_vfs *pUnix = sqlite3_vfs_find("unix");
    if( pUnix==0 ) return SQLITE_ERROR;
    if( pUnix->iVersion<3 ) return SQLITE_ERROR;
    if( strlen(zName)>=sizeof(gVfsName) ) return SQLITE_MISUSE;
    if( vshimAtforkInit()!=0 ) return SQLITE_ERROR;
    gOrig = pUnix;
    vshimTrace = getenv("VERNEUIL_SHIM_TRACE")!=0;
    if( getrandom(gProcessId, sizeof(gProcessId), GRND_NONBLOCK)!=sizeof(gProcessId) ){
      gProcessId[0] = nowNanos() ^ ((uint64_t)getpid()<<32);
    }
    gChunkShift = chunkShift;
    memset(&gVfs, 0, sizeof(gVfs));
    gVfs.iVersion = 3;
    gVfs.szOsFile = (int)sizeof(VFile) + gOrig->szOsFile;
    gVfs.mxPathname = gOrig->mxPathname;
    /* A copy: the caller's string need not outlive the call. */
    memcpy(gVfsName, zName, strlen(zName)+1);
    gVfs.zName = gVfsName;
    gVfs.xOpen = vOpen;
    gVfs.xDelete = vDelete;
    gVfs.xAccess = vAccess;
    gVfs.xFullPathname = vFullPathname;
    gVfs.xDlOpen = vDlOpen;
    gVfs.xDlError = vDlError;
    gVfs.xDlSym = vDlSym;
    gVfs.xDlClose = vDlClose;
    gVfs.xRandomness = vRandomness;
    gVfs.xSleep = vSleep;
    gVfs.xCurrentTime = vCurrentTime;
    gVfs.xGetLastError = vGetLastError;
    gVfs.xCurrentTimeInt64 = vCurrentTimeInt64;
    gVfs.xSetSystemCall = vSetSystemCall;
    gVfs.xGetSystemCall = vGetSystemCall;
    gVfs.xNextSystemCall = vNextSystemCall;
  }else if( chunkShift!=gChunkShift ){
    return SQLITE_MISUSE;
  }
  return sqlite3_vfs_register(&gVfs, makeDefault);
}

int vshim_make_default(const char *zName){
  sqlite3_vfs *p = sqlite3_vfs_find(zName);
  if( p==0 ) return SQLITE_NOTFOUND;
  return sqlite3_vfs_register(p, 1);
}
