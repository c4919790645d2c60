/*
** shimwalqueue.c: WAL commits recorded without a Go call (docs/
** ARCHITECTURE.md, "WAL replication: queued commits").
**
** A WAL commit's capture (shimwal.c) calls Go under the WAL write lock. Most
** commits of a busy database are alike: they continue the position Go
** captured last, write a few pages of chunks whose copies Go already holds
** in its pending set, and leave the database size as it was. For those,
** the copy of their frames (the bytes the committing connection wrote,
** shimwalfile.c) is all Go needs later: it validates the frames' checksum
** chain from its remembered position and copies their pages over the chunk
** copies it holds, in memory, reading neither the database file nor the
** -wal.
**
** One queue per tracked database (the Go tracker's id, shared by all of
** its connections in the process). Go enables it after a capture that
** left a state it can continue from memory: the wal-index header of that
** position, and the chunks its pending set holds whole. At the release of
** the write lock, a commit is queued instead of calling Go when:
**
**   - the header when the lock was granted is the queue's position (no
**     other connection or process committed, restarted or truncated in
**     between), and the release's header continues it in the same
**     generation with the same database size;
**   - this connection wrote exactly the hold's frames, as one run;
**   - every frame's page lies in a chunk the queue allows, or in a chunk
**     wholly past the database's old end when every page it grew by has a
**     frame (such chunks are allowed from then on), and the queue stays
**     under VWALQ_MAX bytes.
**
** The queue's position becomes the release's header. The first commit
** queued after Go took the queue calls Go once (verneuilGoWALQueued) so
** that a build is scheduled: the build takes the queue (and disables it:
** the chunk copies are built and gone), as does every capture of the
** database before it runs. Anything else calls Go as before, which takes
** the queue first.
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shim.h"
#include "shimint.h"
#include "_cgo_export.h"

#define VWALQ_MAX (4<<20)     /* bytes of queued frames before Go is called */
#define VWALQ_DRAIN (1<<18)   /* Go applies the queue in the background past this */
#define VWALQ_CHUNKS 64       /* chunks a queue can allow */
#define VWALQ_GROWTH 4096     /* pages a queued commit may grow the database by */
#define WALIDX_HDR 48

typedef struct VWalQ VWalQ;
struct VWalQ {
  uint64_t id;               /* the Go tracker's database id */
  int nRef;                  /* main files attached (gQListMu) */
  VWalQ *pNext;              /* gQList (gQListMu) */
  pthread_mutex_t mu;        /* everything below */
  int enabled;               /* Go allows queueing from E */
  unsigned char E[WALIDX_HDR];   /* position Go holds plus the queue */
  uint32_t aChunk[VWALQ_CHUNKS]; int nChunk; int chunkShift;
  unsigned char *aBuf;       /* queued frames, from frame (start mx)+1 */
  int64_t nBuf, nAlloc;
  unsigned char start[WALIDX_HDR]; /* position before the first queued commit */
  int nCommit;               /* commits queued */
  int64_t lastNs;            /* CLOCK_REALTIME of the last queued commit */
  VFile *pWalFiles;          /* -wal files of the database (shimwalfile.c, gListMutex) */
  int armed;                 /* Go scheduled a build since the last take that disabled */
  int drainAsked;            /* Go was asked to drain since the last take */
};

static pthread_mutex_t gQListMu = PTHREAD_MUTEX_INITIALIZER;
static VWalQ *gQList = 0;
static int64_t gQueued, gQueueTakes;

void vshimWalQueueStats(vshim_stats *out){
  out->walQueued = __atomic_load_n(&gQueued, __ATOMIC_RELAXED);
  out->walQueueTakes = __atomic_load_n(&gQueueTakes, __ATOMIC_RELAXED);
}

/* Attaches the main file p to the queue of database id (created on first
** use); no queue when id is 0 or memory is short. */
void vshimWalQAttach(VFile *p, uint64_t id){
  VWalQ *q;
  if( id==0 ) return;
  pthread_mutex_lock(&gQListMu);
  for(q=gQList; q && q->id!=id; q=q->pNext){}
  if( q==0 && (q = calloc(1, sizeof(*q)))!=0 ){
    q->id = id;
    pthread_mutex_init(&q->mu, 0);
    q->pNext = gQList;
    gQList = q;
  }
  if( q ) q->nRef++;
  pthread_mutex_unlock(&gQListMu);
  p->pWalQ = q;
}

/* The -wal files of the queue's database (shimwalfile.c): the list's head,
** guarded by gListMutex (vshimListLock). */
VFile **vshimWalQFiles(VWalQ *q){
  return &q->pWalFiles;
}

/* The fork handlers (shimfiles.c) hold the list of queues across fork(). */
void vshimWalQForkLock(int lock){
  if( lock ){
    pthread_mutex_lock(&gQListMu);
  }else{
    pthread_mutex_unlock(&gQListMu);
  }
}

/* A -wal file of the queue's database takes a reference to it. */
void vshimWalQRef(VWalQ *q){
  pthread_mutex_lock(&gQListMu);
  q->nRef++;
  pthread_mutex_unlock(&gQListMu);
}

/* Detaches p (a main file, or a -wal that took a reference); the last
** one frees the queue (Go took it at the close). */
void vshimWalQDetach(VFile *p){
  VWalQ *q = p->pWalQ, **pp;
  if( q==0 ) return;
  p->pWalQ = 0;
  pthread_mutex_lock(&gQListMu);
  if( --q->nRef==0 ){
    for(pp=&gQList; *pp; pp=&(*pp)->pNext){
      if( *pp==q ){ *pp = q->pNext; break; }
    }
  }else{
    q = 0;
  }
  pthread_mutex_unlock(&gQListMu);
  if( q && !vshimForked ){  /* a child leaves it: another thread of the
                            ** parent may have held its mutex at fork() */
    pthread_mutex_destroy(&q->mu);
    free(q->aBuf);
    free(q);
  }
}

static uint32_t u32n(const unsigned char *h, int off){
  uint32_t v;
  memcpy(&v, h+off, 4);
  return v;
}

static uint32_t u32be(const unsigned char *b){
  return ((uint32_t)b[0]<<24) | ((uint32_t)b[1]<<16) | ((uint32_t)b[2]<<8) | b[3];
}

static int pageSizeOf(const unsigned char *h){
  uint16_t sz;
  memcpy(&sz, h+14, 2);
  return (sz & 0xfe00) | ((sz & 1)<<16);
}

static int chunkAllowed(VWalQ *q, uint32_t c){
  int i;
  for(i=0; i<q->nChunk; i++) if( q->aChunk[i]==c ) return 1;
  return 0;
}

/* Whether the nFrame frames a (frameLen bytes each, pages of ps bytes) of
** a commit that takes the database from nOld to nNew pages write only
** pages Go can apply from memory: pages of allowed chunks, and pages of
** chunks that lie wholly past the old end when every page the database
** grew by has a frame (a chunk with no old byte is made of frames alone).
** Such new chunks become allowed. q->mu is held. */
static int pagesAllowed(VWalQ *q, const unsigned char *a, int nFrame, int64_t frameLen, int ps,
                        uint32_t nOld, uint32_t nNew){
  unsigned char seen[VWALQ_GROWTH/8];
  uint32_t grown = nNew - nOld, nSeen = 0, aNew[VWALQ_CHUNKS];
  int i, nAdd = 0;
  if( grown>VWALQ_GROWTH ) return 0;
  memset(seen, 0, (grown+7)/8);
  for(i=0; i<nFrame; i++){
    uint32_t pg = u32be(a + i*frameLen);
    uint32_t c;
    if( pg==0 ) return 0;
    c = (uint32_t)(((int64_t)(pg-1)*ps) >> q->chunkShift);
    if( pg>nOld && pg<=nNew ){
      uint32_t k = pg - nOld - 1;
      if( !(seen[k/8] & (1<<(k%8))) ){ seen[k/8] |= 1<<(k%8); nSeen++; }
    }
    if( chunkAllowed(q, c) ) continue;
    if( ((int64_t)c << q->chunkShift) < (int64_t)nOld*ps ) return 0;  /* old bytes */
    if( nAdd>=VWALQ_CHUNKS || q->nChunk+nAdd>=VWALQ_CHUNKS ) return 0;
    {
      int j, dup = 0;
      for(j=0; j<nAdd; j++) dup |= aNew[j]==c;
      if( !dup ) aNew[nAdd++] = c;
    }
  }
  if( nSeen!=grown ) return 0;
  for(i=0; i<nAdd; i++) q->aChunk[q->nChunk++] = aNew[i];
  return 1;
}

/* The write lock of the main file p is about to be released after a hold
** that changed the wal-index header from prior to now; pW is the -wal file
** that recorded this hold's writes. Returns 1 when the commit was queued
** (Go is not to be called for it), 0 when Go must capture it. */
int vshimWalQOffer(VFile *p, const unsigned char *prior, const unsigned char *now, VFile *pW){
  VWalQ *q = p->pWalQ;
  int ps, nFrame, i, arm = 0;
  uint32_t mxPrior, mxNow;
  int64_t frameLen, n;
  if( q==0 || pW==0 || pW->walBufState!=1 ) return 0;
  ps = pageSizeOf(now);
  if( ps<512 || ps>65536 || (ps & (ps-1))!=0 || pageSizeOf(prior)!=ps ) return 0;
  mxPrior = u32n(prior, 16);
  mxNow = u32n(now, 16);
  if( mxNow<=mxPrior || memcmp(prior+32, now+32, 8)!=0 || u32n(now, 20)<u32n(prior, 20) ) return 0;
  frameLen = 24 + (int64_t)ps;
  nFrame = (int)(mxNow - mxPrior);
  n = (int64_t)nFrame * frameLen;
  if( pW->walBufStart!=32 + (int64_t)mxPrior*frameLen || pW->nWalBuf!=n ) return 0;
  pthread_mutex_lock(&q->mu);
  if( !q->enabled || memcmp(prior, q->E, WALIDX_HDR)!=0 || q->nBuf+n>VWALQ_MAX ){
    q->enabled = 0;  /* Go takes the queue at the capture that follows */
    pthread_mutex_unlock(&q->mu);
    return 0;
  }
  if( !pagesAllowed(q, pW->aWalBuf, nFrame, frameLen, ps, u32n(prior, 20), u32n(now, 20)) ){
    q->enabled = 0;
    pthread_mutex_unlock(&q->mu);
    return 0;
  }
  if( q->nBuf+n>q->nAlloc ){
    /* room for what is applied in the background, at once: no copy */
    int64_t nNew = q->nAlloc ? q->nAlloc : VWALQ_DRAIN + (1<<16);
    unsigned char *aNew;
    while( nNew<q->nBuf+n ) nNew *= 2;
    aNew = realloc(q->aBuf, (size_t)nNew);
    if( aNew==0 ){
      q->enabled = 0;
      pthread_mutex_unlock(&q->mu);
      return 0;
    }
    q->aBuf = aNew;
    q->nAlloc = nNew;
  }
  if( q->nCommit==0 ) memcpy(q->start, prior, WALIDX_HDR);
  memcpy(q->aBuf + q->nBuf, pW->aWalBuf, (size_t)n);
  q->nBuf += n;
  q->nCommit++;
  memcpy(q->E, now, WALIDX_HDR);
  {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    q->lastNs = (int64_t)ts.tv_sec*1000000000 + ts.tv_nsec;
  }
  if( !q->armed ){
    q->armed = 1;
    arm = 1;        /* Go schedules a build */
  }else if( q->nBuf>=VWALQ_DRAIN && !q->drainAsked ){
    q->drainAsked = 1;
    arm = 2;        /* Go applies the queue now, in the background */
  }
  pthread_mutex_unlock(&q->mu);
  __atomic_fetch_add(&gQueued, 1, __ATOMIC_RELAXED);
  TRACE("wal commit queued mxFrame=%u\n", mxNow);
  if( arm ) verneuilGoWALQueued(p->handle, arm==2);
  return 1;
}

/* A capture of the main file p calls Go: nothing is queued from here on
** until Go enables the queue again. */
void vshimWalQDisable(VFile *p){
  VWalQ *q = p->pWalQ;
  if( q==0 ) return;
  pthread_mutex_lock(&q->mu);
  q->enabled = 0;
  pthread_mutex_unlock(&q->mu);
}

static VWalQ *findQueue(uint64_t id){
  VWalQ *q;
  for(q=gQList; q && q->id!=id; q=q->pNext){}
  return q;
}

/* Go takes the queued commits of database id: it disables the queue
** (until vshim_walq_enable) unless keep is set, when the queue goes on
** from its position (Go applied what it took to the chunk copies it still
** holds). When commits were queued, *out holds them (out->aFrames is Go's
** to free with free()) and 1 is returned. */
int vshim_walq_take(uint64_t id, int keep, vshim_walq *out){
  VWalQ *q;
  int got = 0;
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&gQListMu);
  q = findQueue(id);
  if( q ){
    pthread_mutex_lock(&q->mu);
    if( !keep ){
      q->enabled = 0;
      q->armed = 0;
    }
    q->drainAsked = 0;
    if( q->nCommit>0 ){
      memcpy(out->from, q->start, WALIDX_HDR);
      memcpy(out->to, q->E, WALIDX_HDR);
      out->nCommit = q->nCommit;
      out->lastNs = q->lastNs;
      out->nFrames = q->nBuf;
      out->aFrames = q->aBuf;  /* handed over */
      out->ok = 1;
      q->aBuf = 0;
      q->nAlloc = 0;
      q->nBuf = 0;
      q->nCommit = 0;
      got = 1;
    }
    pthread_mutex_unlock(&q->mu);
  }
  pthread_mutex_unlock(&gQListMu);
  if( got ) __atomic_fetch_add(&gQueueTakes, 1, __ATOMIC_RELAXED);
  return got;
}

/* A duplicate of the descriptor of an open -wal of database id (Go closes
** it), or -1: Go compares the frames it takes with the file's. */
int vshim_walq_dup_wal(uint64_t id){
  VWalQ *q;
  VFile *p;
  int fd = -1;
  vshimListLock();              /* the queue's -wal list */
  pthread_mutex_lock(&gQListMu); /* the queue stays */
  q = findQueue(id);
  for(p=q ? q->pWalFiles : 0; p; p=p->pNextWal){
    if( p->fd>=0 ){
      fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
      break;
    }
  }
  pthread_mutex_unlock(&gQListMu);
  vshimListUnlock();
  return fd;
}

/* Go enables queueing for database id from the wal-index header pos, for
** pages of the chunks aChunk[0..nChunk) (chunks of 1<<chunkShift bytes). */
void vshim_walq_enable(uint64_t id, const unsigned char *pos, const uint32_t *aChunk, int nChunk, int chunkShift){
  VWalQ *q;
  pthread_mutex_lock(&gQListMu);
  q = findQueue(id);
  if( q ){
    pthread_mutex_lock(&q->mu);
    if( q->nCommit==0 && nChunk>0 ){
      memcpy(q->E, pos, WALIDX_HDR);
      if( nChunk>VWALQ_CHUNKS ) nChunk = VWALQ_CHUNKS;
      memcpy(q->aChunk, aChunk, sizeof(uint32_t)*(size_t)nChunk);
      q->nChunk = nChunk;
      q->chunkShift = chunkShift;
      q->enabled = 1;
    }
    pthread_mutex_unlock(&q->mu);
  }
  pthread_mutex_unlock(&gQListMu);
}
