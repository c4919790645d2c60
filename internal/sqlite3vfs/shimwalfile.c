/*
** shimwalfile.c: the -wal files open through the replicating VFS, so that
** the WAL capture (shimwal.c) does not open and read back the -wal at
** every commit.
**
** Every connection of a tracked database in WAL mode opens the -wal
** through this VFS; the database's list (kept with its queue of commits,
** shimwalqueue.c, so that a commit looks at its own database's files only,
** however many databases the process has open) holds each such file with
** unix's descriptor (when fstat proves it is the file), under the list
** mutex (shimfiles.c).
**
**   - Written bytes: when a connection is granted the WAL write lock, the
**     -wal files of its database forget what they recorded (a -wal records
**     nothing before the first such grant: the -wal of a database that is
**     not replicated, or in exclusive mode from the start); then every
**     write to a -wal is copied (one memcpy, no Go call) into that file's
**     buffer, as long as the writes stay one contiguous run of at most
**     WALBUF_MAX bytes (frames are appended; a frame rewritten in place
**     by the same transaction lands inside the run) and no truncation cuts
**     it. Only the holder of the write lock appends frames, so at the
**     release the one file that recorded writes is the committing
**     connection's own -wal, which cannot close during its commit: Go
**     reads those bytes from the buffer (and still validates their
**     checksum chain), not from the file.
**   - A descriptor: frames the buffer lacks (another writer's, a restart
**     seen late, a long transaction) are read through a duplicate of an
**     open -wal's descriptor, taken under the list mutex (a file of
**     another connection may close meanwhile) and closed when Go returns.
**     All of one process's connections share one -wal: SQLite deletes or
**     replaces it only with an EXCLUSIVE lock on the database, which no
**     connection can get while another has the WAL open (WAL mode keeps
**     SHARED on the database).
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "shimint.h"

#define WALBUF_MAX (1<<20)   /* bytes of one hold's writes kept for Go */
#define WALBUF_KEPT (1<<18)  /* a larger buffer is freed at the next hold */

/* Whether the -wal file p belongs to the main file pMain. */
static int isWalOf(VFile *p, VFile *pMain){
  return pMain->zPath && p->nPath==pMain->nPath+4
      && memcmp(p->zPath, pMain->zPath, pMain->nPath)==0
      && memcmp(p->zPath+pMain->nPath, "-wal", 4)==0;
}

/* Records the write of b[0..n) at offset o into p's buffer. */
static void recordWrite(VFile *p, const void *b, int n, sqlite3_int64 o){
  int64_t end;
  if( p->walBufState>=2 || n<=0 ) return;
  if( p->walBufState==0 ){
    p->walBufStart = o;
    p->nWalBuf = 0;
    p->walBufState = 1;
  }
  end = o + n - p->walBufStart;
  if( o<p->walBufStart || o>p->walBufStart+p->nWalBuf || end>WALBUF_MAX ){
    p->walBufState = 2;  /* a hole, a write before the run, or too long */
    return;
  }
  if( end>p->nWalBufAlloc ){
    int64_t nNew = p->nWalBufAlloc ? p->nWalBufAlloc : 16384;
    unsigned char *aNew;
    while( nNew<end ) nNew *= 2;
    aNew = realloc(p->aWalBuf, (size_t)nNew);
    if( aNew==0 ){ p->walBufState = 2; return; }
    p->aWalBuf = aNew;
    p->nWalBufAlloc = nNew;
  }
  memcpy(p->aWalBuf + (o - p->walBufStart), b, (size_t)n);
  if( end>p->nWalBuf ) p->nWalBuf = end;
}

static int wWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  VFile *p = (VFile*)f;
  int rc = p->pReal->pMethods->xWrite(p->pReal, b, n, o);
  if( rc==SQLITE_OK ){
    recordWrite(p, b, n, o);
  }else if( p->walBufState!=3 ){
    p->walBufState = 2;
  }
  return rc;
}

static int wTruncate(sqlite3_file *f, sqlite3_int64 sz){
  VFile *p = (VFile*)f;
  if( p->walBufState==1 && sz<p->walBufStart+p->nWalBuf ) p->walBufState = 2;
  return p->pReal->pMethods->xTruncate(p->pReal, sz);
}

static int wClose(sqlite3_file *f){
  VFile *p = (VFile*)f;
  VFile **pp;
  if( p->isJournal ){  /* paired with its main file (shimwalheap.c) */
    if( p->isPairedWal ) vshimWalHeapClose(p);
    vshimUnlinkJournal(p);
  }
  vshimListLock();
  if( p->isWal ){
    for(pp=vshimWalQFiles(p->pWalQ); *pp; pp=&(*pp)->pNextWal){
      if( *pp==p ){ *pp = p->pNextWal; break; }
    }
  }
  p->isWal = 0;
  p->fd = -1;
  vshimListUnlock();
  vshimWalQDetach(p);
  free(p->aWalBuf);
  p->aWalBuf = 0;
  p->nWalBufAlloc = p->nWalBuf = 0;
  p->walBufState = 0;
  return p->pReal->pMethods->xClose(p->pReal);
}

static const sqlite3_io_methods gWalIo = {
  3, wClose, vshimRead, wWrite, wTruncate, vshimSync, vshimFileSize, vshimLock, vshimUnlock,
  vshimCheckReservedLock, vshimFileControl, vshimSectorSize, vshimDeviceCharacteristics,
  vshimShmMap, vshimShmLock, vshimShmBarrier, vshimShmUnmap, vshimFetch, vshimUnfetch
};

/* A -wal file zName opened (pReal is open): remember it and its
** descriptor in the list of its database's -wal files (that of the queue
** of a tracked main file of the same name: only replicated databases have
** one), and record its writes. */
void vshimLinkWal(VFile *p, const char *zName){
  VFile *pMain;
  p->zPath = zName;
  p->nPath = (int)strlen(zName);
  p->fd = vshimFindFd(p->pReal, zName);
  p->base.pMethods = &gWalIo;
  p->walBufState = 3;  /* records nothing until a grant of its database */
  vshimListLock();
  pMain = vshimFindMainLocked(zName, "-wal");
  if( pMain && pMain->pWalQ ){
    VFile **pp = vshimWalQFiles(pMain->pWalQ);
    p->pWalQ = pMain->pWalQ;
    vshimWalQRef(p->pWalQ);
    p->isWal = 1;
    p->pNextWal = *pp;
    *pp = p;
  }
  vshimListUnlock();
}

/* pMain's connection was granted the WAL write lock (or releases it):
** the -wal files of its database forget what they recorded. */
void vshimWalHoldStart(VFile *pMain){
  VFile *p;
  if( pMain->pWalQ==0 || vshimForked ) return;
  vshimListLock();
  for(p=*vshimWalQFiles(pMain->pWalQ); p; p=p->pNextWal){
    if( !isWalOf(p, pMain) ) continue;
    p->walBufState = 0;
    if( p->nWalBufAlloc>WALBUF_KEPT ){  /* a long transaction's */
      free(p->aWalBuf);
      p->aWalBuf = 0;
      p->nWalBufAlloc = 0;
    }
  }
  vshimListUnlock();
}

/* The -wal of pMain's database that recorded writes since the write lock
** was granted (the committing connection's own), or 0. */
VFile *vshimWalWrittenFile(VFile *pMain){
  VFile *p;
  if( pMain->pWalQ==0 ) return 0;
  vshimListLock();
  for(p=*vshimWalQFiles(pMain->pWalQ); p; p=p->pNextWal){
    if( (p->walBufState==1 || p->walBufState==2) && isWalOf(p, pMain) ) break;
  }
  vshimListUnlock();
  return p;
}

/* A duplicate of the descriptor of an open -wal of the main file pMain
** (the caller closes it), or -1 when none is open through this VFS with
** a known descriptor. */
int vshimDupWalFd(VFile *pMain){
  VFile *p;
  int fd = -1;
  if( pMain->pWalQ==0 ) return -1;
  vshimListLock();
  for(p=*vshimWalQFiles(pMain->pWalQ); p; p=p->pNextWal){
    if( p->fd>=0 && isWalOf(p, pMain) ){
      fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
      break;
    }
  }
  vshimListUnlock();
  return fd;
}
