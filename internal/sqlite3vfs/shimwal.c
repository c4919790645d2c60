/*
** shimwal.c: WAL-mode capture of the replicating VFS (docs/ARCHITECTURE.md,
** "WAL replication").
**
** In WAL mode a commit appends frames to DB-wal and publishes them by
** updating the wal-index header in the -shm (region 0, two 48-byte copies)
** before it releases the WAL write lock (xShmLock offset 0, exclusive).
** The tracked main file's xShmLock copies that header when the write lock
** is granted (the prior position: nothing can append until the unlock) and,
** when the lock is about to be released and the header changed, calls Go
** once, before forwarding the unlock: no other writer can append and no
** restart can happen, so the frames up to mxFrame are immutable while Go
** composes the committed state from the database file and the WAL.
**
** While the wal-index is mapped (walOpen), writes to the main file are
** checkpoints, which change no committed state: shim.c passes them
** through without tracking. Exclusive locking mode with the wal-index in
** heap memory calls no xShm* method: shimwalheap.c captures it instead.
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "shimint.h"
#include "_cgo_export.h"

#define WALIDX_HDR 48           /* one copy of the wal-index header */
#define WALIDX_MXFRAME 16       /* u32 mxFrame (native byte order) */
#define WALIDX_SALT 32          /* u32 aSalt[2] */
#define WAL_WRITE_LOCK 0        /* xShmLock slot of the WAL write lock */

static int64_t gWalCommits, gWalResets, gWalLastMx;

void vshimWalStats(vshim_stats *out){
  out->walCommits = __atomic_load_n(&gWalCommits, __ATOMIC_RELAXED);
  out->walResets = __atomic_load_n(&gWalResets, __ATOMIC_RELAXED);
  out->walLastMxFrame = __atomic_load_n(&gWalLastMx, __ATOMIC_RELAXED);
  vshimWalQueueStats(out);
}

/* Copy the wal-index header; 0 when the two copies disagree (a writer
** died between them) or the region is not mapped. */
static int readWalIndexHdr(VFile *p, unsigned char *out){
  const volatile unsigned char *z = (const volatile unsigned char*)p->pShm0;
  unsigned char b[WALIDX_HDR];
  int i;
  if( z==0 ) return 0;
  for(i=0; i<WALIDX_HDR; i++){ out[i] = z[i]; b[i] = z[WALIDX_HDR+i]; }
  return memcmp(out, b, WALIDX_HDR)==0;
}

static uint32_t hdrU32(const unsigned char *h, int off){
  uint32_t v;
  memcpy(&v, h+off, 4);
  return v;
}

/* The write lock is about to be released: if the hold changed the
** wal-index header (commits, a restart, a truncation), hand the prior
** and the current header to Go, which captures or records the reset. */
static void walWriterDone(VFile *p, int priorKnown){
  unsigned char now[WALIDX_HDR];
  int ok = readWalIndexHdr(p, now);
  int walFd, dupFd = 0;
  VFile *pW;
  unsigned char *aW = 0;
  int64_t wStart = 0, nW = 0;
  uint32_t mx;
  if( ok && memcmp(now, p->walPrior, WALIDX_HDR)==0 ) return;
  mx = ok ? hdrU32(now, WALIDX_MXFRAME) : 0;
  if( ok && mx==0 ){
    __atomic_fetch_add(&gWalResets, 1, __ATOMIC_RELAXED);
  }else if( ok && (memcmp(now+WALIDX_SALT, p->walPrior+WALIDX_SALT, 8)!=0
         || mx>hdrU32(p->walPrior, WALIDX_MXFRAME)) ){
    __atomic_fetch_add(&gWalCommits, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&gWalLastMx, (int64_t)mx, __ATOMIC_RELAXED);
  }
  TRACE("wal write lock released ok=%d mxFrame=%u\n", ok, mx);
  if( vshimForked ){
    vshimMarkRescan(p->zMarker);  /* no Go here: a later capture rescans */
    return;
  }
  if( p->handle==0 ) return;
  /* This connection's own -wal, if it wrote frames in this hold
  ** (shimwalfile.c): its bytes and its descriptor are stable until the
  ** commit returns. Only when the grant was seen (it reset every -wal's
  ** record): in exclusive mode a record may be another connection's, from
  ** before. Else a duplicate of a descriptor; -1: Go opens the -wal by
  ** name. */
  pW = priorKnown ? vshimWalWrittenFile(p) : 0;
  if( ok && priorKnown && pW && vshimWalQOffer(p, p->walPrior, now, pW) ){
    memcpy(p->walPrior, now, WALIDX_HDR);  /* queued: no Go call */
    return;
  }
  vshimWalQDisable(p);  /* Go takes the queue before this capture */
  if( pW && pW->fd>=0 ){
    walFd = pW->fd;
  }else{
    walFd = vshimDupWalFd(p);
    dupFd = walFd>=0;
  }
  if( pW && pW->walBufState==1 ){
    aW = pW->aWalBuf; wStart = pW->walBufStart; nW = pW->nWalBuf;
  }
  if( verneuilGoWAL(p->handle, p, (char*)p->zPath, priorKnown ? p->walPrior : 0,
        ok ? now : 0, p->ino, walFd, aW, wStart, nW) ){
    p->wantCheck = 1;
  }
  if( dupFd ) close(walFd);
  if( ok ) memcpy(p->walPrior, now, WALIDX_HDR);
}

/* COMMIT_PHASETWO of a WAL transaction (shim.c). SQLite sends it after the
** write lock was released; in WAL exclusive mode (locking_mode=EXCLUSIVE
** set after the wal-index was mapped) it takes no xShmLock at all, and the
** commit is captured here, with the database's EXCLUSIVE lock held. The
** header copied at the last release is not proof of the prior position:
** Go is not given one (it catches up from its remembered position or
** rescans). */
void vshimWalPhaseTwo(VFile *p){
  if( p->exclusiveMode && !p->walUnlockSeen && p->pShm0 ) walWriterDone(p, 0);
  p->walUnlockSeen = 0;
}

int vshimWalShmMap(sqlite3_file *f, int i, int sz, int w, void volatile **pp){
  VFile *p = (VFile*)f;
  int rc = vshimShmMap(f, i, sz, w, pp);
  if( rc==SQLITE_OK ) p->walOpen = 1;
  if( rc==SQLITE_OK && i==0 && pp && *pp ) p->pShm0 = *pp;
  return rc;
}

int vshimWalShmUnmap(sqlite3_file *f, int del){
  VFile *p = (VFile*)f;
  p->pShm0 = 0;
  p->walWriter = 0;
  p->walOpen = 0;
  return vshimShmUnmap(f, del);
}

int vshimWalShmLock(sqlite3_file *f, int ofst, int n, int flags){
  VFile *p = (VFile*)f;
  int rc;
  if( ofst==WAL_WRITE_LOCK && n==1 && flags==(SQLITE_SHM_UNLOCK|SQLITE_SHM_EXCLUSIVE)
   && p->walWriter ){
    walWriterDone(p, 1);  /* still the only writer */
    p->walWriter = 0;
    p->walUnlockSeen = 1;
  }
  rc = vshimShmLock(f, ofst, n, flags);
  if( rc==SQLITE_OK && ofst==WAL_WRITE_LOCK && n>=1
   && flags==(SQLITE_SHM_LOCK|SQLITE_SHM_EXCLUSIVE) ){
    p->walWriter = 1;
    if( !readWalIndexHdr(p, p->walPrior) ) memset(p->walPrior, 0xff, WALIDX_HDR);
    vshimWalHoldStart(p);  /* -wal writes are recorded from here */
  }
  return rc;
}
