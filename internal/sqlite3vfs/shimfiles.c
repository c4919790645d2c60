/*
** shimfiles.c: process-wide state of the replicating VFS (see shim.c).
**
**   - The open tracked main files, and the journals paired with them. A
**     journal's pointer to its main file is cleared when the main file
**     closes, and pinned while used: the close waits for the pins.
**   - The rescan markers of the databases that Go registered, by path, so
**     that a child forked without exec can leave one when it writes.
**   - fork handling: gListMutex is held across fork(), and the child
**     switches capture off.
**   - The pass-through io methods, shared by every kind of file.
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
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "shim.h"
#include "shimint.h"

int vshimForked = 0;
int vshimTrace = 0;

/* Databases registered with Go in this process, newest first, so that a
** forked child can find the rescan marker of a database by path. Entries
** are immutable and never freed (one per database and spool directory). */
typedef struct VRegistered VRegistered;
struct VRegistered {
  VRegistered *pNext;
  char *zPath;              /* the main file's full path, as SQLite names it */
  char *zMarker;            /* <spool dir>/VSHIM_RESCAN_MARKER */
};

/* Open tracked main files, so that journals can find theirs, the journals
** paired with one, and the registry; all under gListMutex. */
static pthread_mutex_t gListMutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gUnpinned = PTHREAD_COND_INITIALIZER;
static VFile *gMainList = 0;
static VFile *gJournalList = 0;
static VRegistered *gRegistry = 0;

/* Returns the tracked main file named zFile without its suffix zSuffix
** that holds at least minLock, or 0. Called with gListMutex held. */
static VFile *findMainLocked(const char *zFile, const char *zSuffix, int minLock){
  VFile *p;
  size_t n = strlen(zFile), nSuffix = strlen(zSuffix);
  for(p=gMainList; p; p=p->pNextMain){
    if( n==(size_t)p->nPath+nSuffix && memcmp(zFile, p->zPath, p->nPath)==0
     && memcmp(zFile+p->nPath, zSuffix, nSuffix)==0
     && p->lockLevel>=minLock ){
      return p;
    }
  }
  return 0;
}

/* Returns the tracked main file whose journal is zJournal and which holds
** at least RESERVED (the connection that writes, or deletes, the journal),
** or 0. Called with gListMutex held. Tracked connections of one process
** exclude each other's RESERVED locks, so there is at most one. */
static VFile *findMainOfJournalLocked(const char *zJournal){
  return findMainLocked(zJournal, "-journal", SQLITE_LOCK_RESERVED);
}

/* A tracked main file named zFile without its suffix zSuffix, or 0; the
** caller holds gListMutex (vshimListLock). */
VFile *vshimFindMainLocked(const char *zFile, const char *zSuffix){
  return findMainLocked(zFile, zSuffix, SQLITE_LOCK_NONE);
}

/* gListMutex for the lists of -wal files (shimwalfile.c): one mutex is
** held across fork(). */
void vshimListLock(void){ pthread_mutex_lock(&gListMutex); }
void vshimListUnlock(void){ pthread_mutex_unlock(&gListMutex); }

/* A tracked main file opens. */
void vshimLinkMain(VFile *p){
  pthread_mutex_lock(&gListMutex);
  p->pNextMain = gMainList;
  gMainList = p;
  pthread_mutex_unlock(&gListMutex);
}

/* Pairs p with the tracked main file named zFile without zSuffix that
** holds at least minLock, and returns it (0: not paired). */
static VFile *linkPaired(VFile *p, const char *zFile, const char *zSuffix, int minLock){
  pthread_mutex_lock(&gListMutex);
  p->pMain = findMainLocked(zFile, zSuffix, minLock);
  if( p->pMain ){
    p->isJournal = 1;
    p->pNextJournal = gJournalList;
    gJournalList = p;
  }
  pthread_mutex_unlock(&gListMutex);
  return p->pMain;
}

/* A journal opens: pairs it with the main file of its connection, if
** tracked (see findMainOfJournalLocked), and returns that main file (0:
** the journal is not paired). */
VFile *vshimLinkJournal(VFile *p, const char *zJournal){
  return linkPaired(p, zJournal, "-journal", SQLITE_LOCK_RESERVED);
}

/* A -wal opens: pairs it, as a journal, with the tracked main file of its
** connection when that holds EXCLUSIVE (SQLite takes it before it opens a
** WAL whose wal-index is in heap memory; tracked connections of one
** process exclude each other's EXCLUSIVE, so there is at most one), and
** returns that main file (0: not paired). */
VFile *vshimPairWal(VFile *p, const char *zWal){
  VFile *pMain = linkPaired(p, zWal, "-wal", SQLITE_LOCK_EXCLUSIVE);
  if( pMain ) p->isPairedWal = 1;
  return pMain;
}

/* Pins the main file of journal zJournal (see findMainOfJournalLocked):
** it cannot finish closing until vshimUnpinMain. */
VFile *vshimPinMainOfJournal(const char *zJournal){
  VFile *p;
  pthread_mutex_lock(&gListMutex);
  p = findMainOfJournalLocked(zJournal);
  if( p ) p->nPin++;
  pthread_mutex_unlock(&gListMutex);
  return p;
}

/* Pins the main file the journal pJ is paired with, if it is still open. */
VFile *vshimPinMainOf(VFile *pJ){
  VFile *p;
  pthread_mutex_lock(&gListMutex);
  p = pJ->pMain;
  if( p ) p->nPin++;
  pthread_mutex_unlock(&gListMutex);
  return p;
}

void vshimUnpinMain(VFile *p){
  pthread_mutex_lock(&gListMutex);
  if( --p->nPin==0 ) pthread_cond_broadcast(&gUnpinned);
  pthread_mutex_unlock(&gListMutex);
}

/* A tracked main file closes: forget it, detach the journals paired with
** it, and wait until no journal uses it any more. */
void vshimUnlinkMain(VFile *p){
  VFile **pp, *pJ;
  pthread_mutex_lock(&gListMutex);
  for(pp=&gMainList; *pp; pp=&(*pp)->pNextMain){
    if( *pp==p ){ *pp = p->pNextMain; break; }
  }
  for(pJ=gJournalList; pJ; pJ=pJ->pNextJournal){
    if( pJ->pMain==p ) pJ->pMain = 0;
  }
  while( p->nPin>0 ) pthread_cond_wait(&gUnpinned, &gListMutex);
  pthread_mutex_unlock(&gListMutex);
}

void vshimUnlinkJournal(VFile *p){
  VFile **pp;
  pthread_mutex_lock(&gListMutex);
  for(pp=&gJournalList; *pp; pp=&(*pp)->pNextJournal){
    if( *pp==p ){ *pp = p->pNextJournal; break; }
  }
  p->isJournal = 0;
  p->pMain = 0;
  pthread_mutex_unlock(&gListMutex);
}

/* Remembers the rescan marker of the database at zPath, whose spool
** directory is zSpool, and returns it (0 when out of memory). */
const char *vshimRegisterMarker(const char *zPath, const char *zSpool){
  VRegistered *r;
  const char *zOut = 0;
  size_t nSpool = strlen(zSpool);
  pthread_mutex_lock(&gListMutex);
  for(r=gRegistry; r; r=r->pNext){
    if( strcmp(r->zPath, zPath)==0 ) break;
  }
  if( r && strncmp(r->zMarker, zSpool, nSpool)==0
   && strcmp(r->zMarker+nSpool, "/" VSHIM_RESCAN_MARKER)==0 ){
    zOut = r->zMarker;
  }else{
    size_t nMarker = nSpool + sizeof("/" VSHIM_RESCAN_MARKER);
    r = malloc(sizeof(*r));
    if( r ){
      r->zPath = strdup(zPath);
      r->zMarker = malloc(nMarker);
      if( r->zPath && r->zMarker ){
        snprintf(r->zMarker, nMarker, "%s/" VSHIM_RESCAN_MARKER, zSpool);
        r->pNext = gRegistry;
        gRegistry = r;
        zOut = r->zMarker;
      }else{
        free(r->zPath); free(r->zMarker); free(r);
      }
    }
  }
  pthread_mutex_unlock(&gListMutex);
  return zOut;
}

/* The rescan marker of the database at zPath, or 0 if Go never registered
** it in this process. */
const char *vshimFindMarker(const char *zPath){
  VRegistered *r;
  const char *zOut = 0;
  pthread_mutex_lock(&gListMutex);
  for(r=gRegistry; r; r=r->pNext){
    if( strcmp(r->zPath, zPath)==0 ){ zOut = r->zMarker; break; }
  }
  pthread_mutex_unlock(&gListMutex);
  return zOut;
}

/* In a forked child, the first write of a transaction: leave the rescan
** marker in the database's spool directory (an empty file; it may exist). */
void vshimMarkRescan(const char *zMarker){
  int fd;
  if( zMarker==0 ) return;
  fd = open(zMarker, O_CREAT|O_WRONLY|O_CLOEXEC, 0600);
  if( fd<0 ){
    TRACE("rescan marker %s: %s\n", zMarker, strerror(errno));
    return;
  }
  close(fd);
}

/* The Go runtime does not survive fork() without exec: the child's VFS
** captures nothing; its writes leave rescan markers (vshimMarkRescan) and are
** caught by the parent's identity checks. gListMutex is held across fork()
** so that the child's copy is consistent and unlocked. Only the forking
** thread exists in the child: the pins and condition waiters of the
** parent's other threads are dropped there. */
static void beforeFork(void){
  pthread_mutex_lock(&gListMutex);
  vshimWalQForkLock(1);  /* the queues' list: the child closes files too */
}
static void parentAfterFork(void){
  vshimWalQForkLock(0);
  pthread_mutex_unlock(&gListMutex);
}
static void childAfterFork(void){
  VFile *p;
  vshimForked = 1;
  for(p=gMainList; p; p=p->pNextMain) p->nPin = 0;
  pthread_cond_init(&gUnpinned, 0);
  vshimWalQForkLock(0);
  pthread_mutex_unlock(&gListMutex);
}

/* Installs the fork handlers, once. */
int vshimAtforkInit(void){
  static int done = 0;
  if( done ) return 0;
  if( pthread_atfork(beforeFork, parentAfterFork, childAfterFork)!=0 ) return -1;
  done = 1;
  return 0;
}

/* ------------------------------------------------------- pass-through io */

#define REAL(f) (((VFile*)(f))->pReal)

int vshimRead(sqlite3_file *f, void *b, int n, sqlite3_int64 o){
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
int vshimWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
int vshimTruncate(sqlite3_file *f, sqlite3_int64 sz){
  return REAL(f)->pMethods->xTruncate(REAL(f), sz);
}
int vshimSync(sqlite3_file *f, int flags){
  TRACE("sync %d main=%d\n", flags, ((VFile*)f)->handle!=0);
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}
int vshimFileSize(sqlite3_file *f, sqlite3_int64 *pSize){
  return REAL(f)->pMethods->xFileSize(REAL(f), pSize);
}
static int sliceOutwait(VFile *p, int e, uint64_t released0);
static uint64_t sliceReleases(void);

/* A lock the application asks for never fails because a SHARED hold of
** ours is on the file (a sliced rescan's, see "sliced reads" below, or a
** capture's, kept by tUnlock after the application let go): an attempt at
** EXCLUSIVE that is busy while one is held waits for it to let go and
** tries again, keeping PENDING meanwhile, so a slice's next SHARED fails
** and the rescan retries. Only SHARED of ours can collide (we never take
** more), and only with EXCLUSIVE: RESERVED and SHARED coexist with it. */
int vshimLock(sqlite3_file *f, int e){
  VFile *p = (VFile*)f;
  /* A forked child runs no slices (no Go), and gSliceMutex may have been
  ** held by another thread of the parent at fork(): it is left alone. */
  int outwait = e>=SQLITE_LOCK_PENDING && !vshimForked;
  uint64_t released0;
  /* Taking more than SHARED, the connection's SHARED is its own again. */
  if( p->capHoldLinger && e>SQLITE_LOCK_SHARED ){
    p->capHoldLinger = 0;
    vshimHoldEnd(&p->capHold, 1);
  }
  released0 = outwait ? sliceReleases() : 0;
  int rc = p->pReal->pMethods->xLock(p->pReal, e);
  if( rc==SQLITE_BUSY && outwait ) rc = sliceOutwait(p, e, released0);
  if( rc==SQLITE_OK && e>p->lockLevel ) p->lockLevel = e;
  /* A failed EXCLUSIVE can leave unix holding PENDING (SQLite 3.40 also
  ** from SHARED), which SQLite drops with an unlock to SHARED: that
  ** unlock must reach unix (tUnlock forwards it from above SHARED). */
  if( rc!=SQLITE_OK && e==SQLITE_LOCK_EXCLUSIVE && p->lockLevel<SQLITE_LOCK_PENDING ){
    p->lockLevel = SQLITE_LOCK_PENDING;
  }
  return rc;
}
int vshimUnlock(sqlite3_file *f, int e){
  VFile *p = (VFile*)f;
  int rc = p->pReal->pMethods->xUnlock(p->pReal, e);
  if( rc==SQLITE_OK ) p->lockLevel = e;
  return rc;
}
int vshimCheckReservedLock(sqlite3_file *f, int *pOut){
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), pOut);
}
int vshimFileControl(sqlite3_file *f, int op, void *pArg){
  if( ((VFile*)f)->handle==0 ) TRACE("fcntl %d on other file\n", op);
  int rc = REAL(f)->pMethods->xFileControl(REAL(f), op, pArg);
  if( op==SQLITE_FCNTL_VFSNAME && rc==SQLITE_OK ){
    *(char**)pArg = sqlite3_mprintf("verneuil/%z", *(char**)pArg);
  }
  return rc;
}
int vshimSectorSize(sqlite3_file *f){
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}
int vshimDeviceCharacteristics(sqlite3_file *f){
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
int vshimShmMap(sqlite3_file *f, int i, int sz, int w, void volatile **pp){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion<2 || r->pMethods->xShmMap==0 ) return SQLITE_IOERR_SHMMAP;
  return r->pMethods->xShmMap(r, i, sz, w, pp);
}
int vshimShmLock(sqlite3_file *f, int o, int n, int fl){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion<2 || r->pMethods->xShmLock==0 ) return SQLITE_IOERR_SHMLOCK;
  return r->pMethods->xShmLock(r, o, n, fl);
}
void vshimShmBarrier(sqlite3_file *f){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion>=2 && r->pMethods->xShmBarrier ) r->pMethods->xShmBarrier(r);
}
int vshimShmUnmap(sqlite3_file *f, int del){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion<2 || r->pMethods->xShmUnmap==0 ) return SQLITE_OK;
  return r->pMethods->xShmUnmap(r, del);
}
int vshimFetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion<3 || r->pMethods->xFetch==0 ){ *pp = 0; return SQLITE_OK; }
  return r->pMethods->xFetch(r, o, n, pp);
}
int vshimUnfetch(sqlite3_file *f, sqlite3_int64 o, void *pp){
  sqlite3_file *r = REAL(f);
  if( r->pMethods->iVersion<3 || r->pMethods->xUnfetch==0 ) return SQLITE_OK;
  return r->pMethods->xUnfetch(r, o, pp);
}

/* ------------------------------------------------------- sliced reads */

/* A private unix file on a tracked database, for reads in slices outside a
** capture (see shim.h). zPath is owned: unix keeps a pointer to it. */
typedef struct VSlice VSlice;
struct VSlice {
  char *zPath;
  int locked;
  VHold hold;              /* in gHolds while open */
  sqlite3_file *pReal;     /* allocated right after VSlice */
};

/* The SHARED holds of ours (open slices, and captures running under
** their connection's SHARED), so that an application's busy EXCLUSIVE can
** tell that one on its file is in the way (vshimLock). A hold is marked
** held before SHARED is asked for (or kept) and unmarked after it was
** released; gSliceReleases counts the releases, so that a hold that let go
** between the application's attempt and its look at the list is noticed
** too. */
static pthread_mutex_t gSliceMutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gSliceReleased = PTHREAD_COND_INITIALIZER;
static VHold *gHolds = 0;
static uint64_t gSliceReleases = 0;

/* How long an application's EXCLUSIVE waits, in all, for slices to let
** go: a slice holds SHARED for one read of at most 1 MiB and a stat. */
#define VSHIM_SLICE_OUTWAIT_SEC 10
/* How long a capture's hold lingers once its capture ended while its
** connection still holds SHARED (vshimHoldLinger). */
#define VSHIM_HOLD_LINGER_MS 200

static uint64_t sliceReleases(void){
  uint64_t n;
  pthread_mutex_lock(&gSliceMutex);
  n = gSliceReleases;
  pthread_mutex_unlock(&gSliceMutex);
  return n;
}

static int timespecBefore(const struct timespec *a, const struct timespec *b){
  return a->tv_sec<b->tv_sec || (a->tv_sec==b->tv_sec && a->tv_nsec<b->tv_nsec);
}

/* gSliceMutex held. Whether a hold on ino is held; a lingering one counts
** until its time is up, and *pWake becomes the earliest such time when it
** is before *pWake. */
static int sliceHeldOn(uint64_t ino, struct timespec *pWake){
  VHold *s;
  struct timespec now;
  int held = 0, haveNow = 0;
  for(s=gHolds; s; s=s->pNext){
    if( !s->held || !(s->ino==ino || s->ino==0 || ino==0) ) continue;
    if( s->lingerUntil.tv_sec==0 ) return 1;
    if( !haveNow ){ clock_gettime(CLOCK_REALTIME, &now); haveNow = 1; }
    if( !timespecBefore(&now, &s->lingerUntil) ) continue;
    held = 1;
    if( timespecBefore(&s->lingerUntil, pWake) ) *pWake = s->lingerUntil;
  }
  return held;
}

/* The application's xLock(e) on p was busy: while a slice on its file
** holds SHARED, or one released it since released0, wait for the slices
** to let go and try again. Returns the last attempt's code. */
static int sliceOutwait(VFile *p, int e, uint64_t released0){
  struct timespec deadline;
  int rc = SQLITE_BUSY;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += VSHIM_SLICE_OUTWAIT_SEC;
  for(;;){
    int again, timedOut = 0;
    pthread_mutex_lock(&gSliceMutex);
    struct timespec wake = deadline;
    again = gSliceReleases!=released0 || sliceHeldOn(p->ino, &wake);
    while( again && !timedOut && sliceHeldOn(p->ino, &wake) ){
      int w = pthread_cond_timedwait(&gSliceReleased, &gSliceMutex, &wake);
      timedOut = w==ETIMEDOUT && !timespecBefore(&wake, &deadline);
      wake = deadline;
    }
    released0 = gSliceReleases;
    pthread_mutex_unlock(&gSliceMutex);
    if( !again || timedOut ) return rc;
    TRACE("lock %d busy while a sliced rescan held SHARED: again\n", e);
    rc = p->pReal->pMethods->xLock(p->pReal, e);
    if( rc!=SQLITE_BUSY ) return rc;
  }
}

void *vshim_slice_open(void *pFile){
  VFile *p = (VFile*)pFile;
  sqlite3_vfs *pOrig = vshimOrigVfs();
  VSlice *s;
  int outFlags = 0, rc;
  /* The slices are read from another thread (a goroutine): only where
  ** unix's lock bookkeeping has mutexes. */
  if( pOrig==0 || p->zPath==0 || vshimForked || !sqlite3_threadsafe() ) return 0;
  s = (VSlice*)calloc(1, sizeof(VSlice) + pOrig->szOsFile);
  if( s==0 ) return 0;
  s->pReal = (sqlite3_file*)&s[1];
  /* A copy of the path ending like a database file name (two NULs): unix
  ** only reads URI parameters with SQLITE_OPEN_URI, which is not passed. */
  s->zPath = (char*)calloc(1, p->nPath + 4);
  if( s->zPath==0 ){ free(s); return 0; }
  memcpy(s->zPath, p->zPath, p->nPath);
  rc = pOrig->xOpen(pOrig, s->zPath, s->pReal,
                    SQLITE_OPEN_READONLY|SQLITE_OPEN_MAIN_DB, &outFlags);
  if( rc!=SQLITE_OK ){
    if( s->pReal->pMethods ) s->pReal->pMethods->xClose(s->pReal);
    free(s->zPath); free(s);
    return 0;
  }
  s->hold.ino = p->ino;
  pthread_mutex_lock(&gSliceMutex);
  s->hold.pNext = gHolds;
  gHolds = &s->hold;
  s->hold.listed = 1;
  pthread_mutex_unlock(&gSliceMutex);
  return s;
}

static int64_t gSliceHolds = 0;
int64_t vshimSliceHolds(void){
  return __atomic_load_n(&gSliceHolds, __ATOMIC_RELAXED);
}

/* A capture's hold: tUnlock begins it (held) before the capture, and ends
** it after the connection released SHARED. When the connection keeps
** SHARED after the capture (its xUnlock to NONE comes next), the hold
** lingers (vshimHoldLinger) until that unlock ends it, for at most
** VSHIM_HOLD_LINGER_MS: a waiting EXCLUSIVE that retried right when the
** capture ended would meet that SHARED, which unix holds for microseconds
** only, and fail. Beginning a hold already listed makes it held again. */
void vshimHoldBegin(VHold *h, uint64_t ino){
  if( vshimForked ) return;
  pthread_mutex_lock(&gSliceMutex);
  h->ino = ino;
  h->held = 1;
  h->lingerUntil.tv_sec = 0;
  h->lingerUntil.tv_nsec = 0;
  if( !h->listed ){
    h->pNext = gHolds;
    gHolds = h;
    h->listed = 1;
  }
  pthread_mutex_unlock(&gSliceMutex);
}

/* Removes h from the holds; released: count it as a release and wake the
** waiters (a slice counted its own releases already). */
void vshimHoldEnd(VHold *h, int released){
  VHold **pp;
  if( vshimForked ) return;
  pthread_mutex_lock(&gSliceMutex);
  for(pp=&gHolds; h->listed && *pp; pp=&(*pp)->pNext){
    if( *pp==h ){ *pp = h->pNext; break; }
  }
  h->listed = 0;
  h->held = 0;
  h->lingerUntil.tv_sec = 0;
  h->lingerUntil.tv_nsec = 0;
  if( released ){
    gSliceReleases++;
    pthread_cond_broadcast(&gSliceReleased);
  }
  pthread_mutex_unlock(&gSliceMutex);
}

/* The capture under h is over; its connection keeps SHARED: h counts as
** held for VSHIM_HOLD_LINGER_MS more, unless ended before. */
void vshimHoldLinger(VHold *h){
  struct timespec t;
  if( vshimForked ) return;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_nsec += (long)VSHIM_HOLD_LINGER_MS*1000000L;
  t.tv_sec += t.tv_nsec/1000000000L;
  t.tv_nsec %= 1000000000L;
  pthread_mutex_lock(&gSliceMutex);
  h->lingerUntil = t;
  /* waiters sleep until the earliest end of a lingering hold: wake them
  ** to take this one's into account */
  pthread_cond_broadcast(&gSliceReleased);
  pthread_mutex_unlock(&gSliceMutex);
}

/* held is set, under gSliceMutex, before unix is asked for SHARED, and
** cleared after SHARED was released (sliceRelease). */
static void sliceRelease(VSlice *s){
  pthread_mutex_lock(&gSliceMutex);
  s->hold.held = 0;
  gSliceReleases++;
  pthread_cond_broadcast(&gSliceReleased);
  pthread_mutex_unlock(&gSliceMutex);
}

int vshim_slice_lock(void *pSlice){
  VSlice *s = (VSlice*)pSlice;
  int rc;
  pthread_mutex_lock(&gSliceMutex);
  s->hold.held = 1;
  pthread_mutex_unlock(&gSliceMutex);
  rc = s->pReal->pMethods->xLock(s->pReal, SQLITE_LOCK_SHARED);
  if( rc==SQLITE_OK ){
    s->locked = 1;
    __atomic_fetch_add(&gSliceHolds, 1, __ATOMIC_RELAXED);
  }else{
    sliceRelease(s);
  }
  return rc;
}

int vshim_slice_unlock(void *pSlice){
  VSlice *s = (VSlice*)pSlice;
  int rc;
  s->locked = 0;
  rc = s->pReal->pMethods->xUnlock(s->pReal, SQLITE_LOCK_NONE);
  sliceRelease(s);
  return rc;
}

int vshim_slice_read(void *pSlice, void *buf, int n, int64_t off){
  VSlice *s = (VSlice*)pSlice;
  return s->pReal->pMethods->xRead(s->pReal, buf, n, off);
}

int vshim_slice_stamp(void *pSlice, vshim_stamp *out){
  VSlice *s = (VSlice*)pSlice;
  /* unix keeps its file descriptor right after three pointers in unixFile
  ** (see findFd in shim.c); fstat proves it is this file's. */
  int fd = *(int*)((char*)s->pReal + 3*sizeof(void*));
  struct stat a, b;
  ssize_t n;
  memset(out, 0, sizeof(*out));
  if( fd<0 || fstat(fd, &a)!=0 || stat(s->zPath, &b)!=0
   || a.st_dev!=b.st_dev || a.st_ino!=b.st_ino ) return SQLITE_IOERR_FSTAT;
  out->ino = (uint64_t)a.st_ino;
  out->size = (int64_t)a.st_size;
  out->mtimeSec = (int64_t)a.st_mtim.tv_sec;
  out->mtimeNsec = (int64_t)a.st_mtim.tv_nsec;
  out->ctimeSec = (int64_t)a.st_ctim.tv_sec;
  out->ctimeNsec = (int64_t)a.st_ctim.tv_nsec;
  n = fgetxattr(fd, VSHIM_XATTR_NAME, out->xattr, sizeof(out->xattr));
  if( n>=0 ) out->xattrLen = (int)n;
  else out->xattrLen = (errno==ENODATA) ? 0 : -1;
  n = pread(fd, out->header, VSHIM_HEADER_LEN, 0);
  if( n<0 ) return SQLITE_IOERR_READ;
  return SQLITE_OK;
}

void vshim_slice_close(void *pSlice){
  VSlice *s = (VSlice*)pSlice;
  if( s==0 ) return;
  if( s->locked ) s->pReal->pMethods->xUnlock(s->pReal, SQLITE_LOCK_NONE);
  s->locked = 0;
  sliceRelease(s);
  vshimHoldEnd(&s->hold, 0);
  s->pReal->pMethods->xClose(s->pReal);
  free(s->zPath);
  free(s);
}
