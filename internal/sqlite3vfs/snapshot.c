/*
** snapshot.c: the read-only VFS "verneuil_snapshot", which reads replicas
** straight from the blob store (internal/replica does the fetching).
**
** The main database file of a connection names a replica; Go resolves it
** to a source (one per replicated database and pin per process, shared by
** every connection). The C side keeps:
**
**   - per source (SSource): the current version and when to ask Go again;
**   - per version (SVersion, refcounted by the files pinned to it and by
**     its source while current): the chunk hashes and a header copy;
**   - one process-wide chunk cache (SChunk), keyed by chunk hash, bounded
**     in bytes, least recently used out first.
**
** xRead of a cached chunk is a memcpy under one mutex: no Go call. A miss
** calls Go once for that chunk (Go merges concurrent misses, reads the disk
** cache or the store, and verifies the hash). Each read transaction pins
** one version: at xLock(SHARED) the file moves to its source's current
** version, which Go refreshes at most once per interval (C does not even
** call Go before the interval has passed). Versions never go backwards.
**
** SQLite keeps its page cache across transactions while bytes 24..39 of
** the file are unchanged. Each SVersion gets a process-unique epoch that
** replaces the change counter (bytes 24..27, and the "version valid for"
** copy at 92..95 when the source's two were equal): a new version always
** looks changed to the pager, the same version never does, even where the
** source's counter did not move between two published versions.
**
** Everything is read only: the file opens SQLITE_OPEN_READONLY, writes and
** syncs fail with SQLITE_READONLY, no journal, WAL or shm file is opened
** (xAccess says none exists), "PRAGMA journal_mode=X" fails with
** SQLITE_READONLY. Temp files (sorts, temp tables) go to the unix VFS.
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "snapshot.h"
#include "_cgo_export.h"

#define NBUCKET 4096

typedef struct SChunk SChunk;
struct SChunk {
  unsigned char h[VSNAP_HASH_LEN];
  int n;
  unsigned char *a;
  SChunk *pHashNext;
  SChunk *pPrev, *pNext;       /* LRU list, most recent first */
};

typedef struct SVersion SVersion;
typedef struct SSource SSource;
struct SVersion {
  SSource *pSrc;
  vsnap_info info;
  unsigned char *aHash;        /* nChunk hashes */
  unsigned char hdr[VSNAP_HEADER_LEN];  /* the first 100 bytes, epoch in */
  int nHdr;
  int nRef;
  SVersion *pNext;             /* all versions */
};

struct SSource {
  uint64_t h;                  /* Go handle */
  SVersion *pCur;              /* current version (holds a reference) */
  int64_t nextCheck;           /* monotonic ns: ask Go again from then */
  int nRef;                    /* open files */
  SSource *pNext;
};

typedef struct SFile SFile;
struct SFile {
  sqlite3_file base;
  SSource *pSrc;
  SVersion *pVer;              /* pinned version (holds a reference) */
  int lock;
};

static pthread_mutex_t gMutex = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs *gUnix = 0;
static sqlite3_vfs gSnapVfs;
static char gSnapName[64];
static SChunk *aBucket[NBUCKET];
static SChunk *gLruHead = 0, *gLruTail = 0;
static int64_t gMemMax = 64<<20;
static SSource *gSources = 0;
static SVersion *gVersions = 0;
static uint32_t gEpoch = 0;
static vsnap_stats gSnapStats;

/* fork() without exec: the Go runtime's threads do not exist in the child,
** and a call into Go there never returns. A pthread_atfork handler sets
** gForked in the child; the VFS then never calls Go: files keep the
** version they hold and read the chunks cached in memory, a miss is
** SQLITE_IOERR_READ, an open SQLITE_CANTOPEN, a pragma an error, each
** explained once on stderr and in sqlite3_log. gMutex is held across fork()
** so that the child's copy of the cache is consistent and unlocked. */
static int gForked = 0;
static int gAtfork = 0; /* the handlers are installed */
static const char gForkedMsg[] = "verneuil_snapshot: not available in a child process forked without exec "
  "(the Go runtime does not survive fork): only chunks already in memory can be read";
static void snapBeforeFork(void){ pthread_mutex_lock(&gMutex); }
static void snapParentAfterFork(void){ pthread_mutex_unlock(&gMutex); }
static void snapChildAfterFork(void){ gForked = 1; pthread_mutex_unlock(&gMutex); }

/* Reports, once per child, that Go is out of reach; returns rc. */
static int forkedError(int rc, const char *zWhat){
  static int told = 0;
  sqlite3_log(rc, "%s (%s)", gForkedMsg, zWhat);
  if( !__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED) ){
    char buf[320];
    int n = snprintf(buf, sizeof(buf), "%s (pid %d)\n", gForkedMsg, (int)getpid());
    if( n>0 && write(2, buf, (size_t)(n<(int)sizeof(buf) ? n : (int)sizeof(buf)-1))<0 ){ /* nothing to do */ }
  }
  return rc;
}

static const sqlite3_io_methods gSnapIo;

static int64_t monoNanos(void){
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec*1000000000 + ts.tv_nsec;
}

static unsigned bucketOf(const unsigned char *h){
  return (unsigned)(h[0] | h[1]<<8) % NBUCKET;
}

/* ---- chunk buffers (caller holds gMutex) ----
** A cold scan copies every chunk into fresh memory, and fresh anonymous
** memory costs a page fault per 4 KiB page on first touch: on the
** development VM, 1 ms per 64 KiB chunk, as much as fetching it. Buffers of
** 8 KiB..2 MiB therefore come from 2 MiB-aligned slabs advised
** MADV_HUGEPAGE (one fault per 2 MiB where transparent huge pages are
** enabled, always or for madvise), cut into slots of the buffer's
** power-of-two class. A freed slot goes back to its class's free list for
** the next chunk; slabs are never unmapped, so what they hold is the
** cache's peak (bounded by snapshot_memory_cache plus one slab per class).
** Other sizes use malloc. */
#define SLAB_SHIFT 21                 /* 2 MiB: one huge page */
#define SLOT_MIN_SHIFT 14             /* the smallest slot, 16 KiB */
#define SLAB_REGION 16                /* slabs mapped at once */
typedef struct SSlot SSlot;
struct SSlot { SSlot *pNext; };
static SSlot *aSlotFree[SLAB_SHIFT-SLOT_MIN_SHIFT+1];
static unsigned char *gRegionNext = 0, *gRegionEnd = 0;

/* The slot class of an n-byte buffer, or -1 for malloc. */
static int slotClass(int n){
  int k = 0;
  if( n<=(1<<(SLOT_MIN_SHIFT-1)) || n>(1<<SLAB_SHIFT) ) return -1;
  while( (1<<(SLOT_MIN_SHIFT+k))<n ) k++;
  return k;
}

/* A new 2 MiB-aligned slab, or 0 when no memory can be mapped. */
static unsigned char *newSlab(void){
  const size_t slab = (size_t)1<<SLAB_SHIFT, size = slab*SLAB_REGION;
  unsigned char *s;
  if( gRegionNext==gRegionEnd ){
    unsigned char *p = (unsigned char*)mmap(0, size+slab, PROT_READ|PROT_WRITE,
                                            MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    uintptr_t a;
    if( p==(unsigned char*)MAP_FAILED ) return 0;
    a = ((uintptr_t)p + slab - 1) & ~(uintptr_t)(slab-1);
    if( a>(uintptr_t)p ) munmap(p, a-(uintptr_t)p);
    if( (uintptr_t)p+slab>a ) munmap((void*)(a+size), (uintptr_t)p+slab-a);
#ifdef MADV_HUGEPAGE
    madvise((void*)a, size, MADV_HUGEPAGE); /* advice: ignored where THP is off */
#endif
    gRegionNext = (unsigned char*)a;
    gRegionEnd = gRegionNext + size;
  }
  s = gRegionNext;
  gRegionNext += slab;
  return s;
}

/* A buffer for an n-byte chunk (free it with chunkFree(a, n)), or 0. */
static unsigned char *chunkAlloc(int n){
  int k = slotClass(n);
  SSlot *f;
  if( k<0 ) return (unsigned char*)malloc(n>0 ? (size_t)n : 1);
  if( aSlotFree[k]==0 ){
    size_t slot = (size_t)1<<(SLOT_MIN_SHIFT+k), off;
    unsigned char *s = newSlab();
    if( s==0 ) return 0;
    for(off=((size_t)1<<SLAB_SHIFT); off>0; off-=slot){ /* first slot on top */
      f = (SSlot*)(s+off-slot);
      f->pNext = aSlotFree[k];
      aSlotFree[k] = f;
    }
  }
  f = aSlotFree[k];
  aSlotFree[k] = f->pNext;
  return (unsigned char*)f;
}

static void chunkFree(unsigned char *a, int n){
  int k = slotClass(n);
  SSlot *f = (SSlot*)a;
  if( a==0 ) return;
  if( k<0 ){ free(a); return; }
  f->pNext = aSlotFree[k];
  aSlotFree[k] = f;
}

/* ---- chunk cache (caller holds gMutex) ---- */

static void lruUnlink(SChunk *c){
  if( c->pPrev ) c->pPrev->pNext = c->pNext; else gLruHead = c->pNext;
  if( c->pNext ) c->pNext->pPrev = c->pPrev; else gLruTail = c->pPrev;
  c->pPrev = c->pNext = 0;
}
static void lruFront(SChunk *c){
  c->pNext = gLruHead; c->pPrev = 0;
  if( gLruHead ) gLruHead->pPrev = c; else gLruTail = c;
  gLruHead = c;
}

static SChunk *cacheFind(const unsigned char *h){
  SChunk *c;
  for(c=aBucket[bucketOf(h)]; c; c=c->pHashNext){
    if( memcmp(c->h, h, VSNAP_HASH_LEN)==0 ) return c;
  }
  return 0;
}

static void cacheRemove(SChunk *c){
  SChunk **pp = &aBucket[bucketOf(c->h)];
  while( *pp && *pp!=c ) pp = &(*pp)->pHashNext;
  if( *pp ) *pp = c->pHashNext;
  lruUnlink(c);
  gSnapStats.cacheBytes -= c->n;
  gSnapStats.evictions++;
  chunkFree(c->a, c->n);
  free(c);
}

/* Insert a buffer a of n bytes from chunkAlloc (taken over), or return the
** entry already there (a is then freed). Evicts down to gMemMax, never c. */
static SChunk *cacheInsert(const unsigned char *h, unsigned char *a, int n){
  SChunk *c = cacheFind(h);
  unsigned b;
  if( c ){ chunkFree(a, n); return c; }
  c = (SChunk*)calloc(1, sizeof(*c));
  if( c==0 ){ chunkFree(a, n); return 0; }
  memcpy(c->h, h, VSNAP_HASH_LEN);
  c->a = a; c->n = n;
  b = bucketOf(h);
  c->pHashNext = aBucket[b]; aBucket[b] = c;
  lruFront(c);
  gSnapStats.cacheBytes += n;
  while( gSnapStats.cacheBytes>gMemMax && gLruTail && gLruTail!=c ){
    cacheRemove(gLruTail);
  }
  return c;
}

int vsnap_cache_has(const unsigned char *h){
  int r;
  pthread_mutex_lock(&gMutex);
  r = cacheFind(h)!=0;
  pthread_mutex_unlock(&gMutex);
  return r;
}

void vsnap_get_stats(vsnap_stats *out){
  pthread_mutex_lock(&gMutex);
  *out = gSnapStats;
  pthread_mutex_unlock(&gMutex);
}

/* ---- versions and sources ---- */

/* Drop a reference to v (caller holds gMutex). Returns the Go handle and
** seq to release with Go after unlocking, in *pH/*pSeq (*pH 0: none). */
static void versionUnref(SVersion *v, uint64_t *pH, uint64_t *pSeq){
  SVersion **pp;
  *pH = 0;
  if( v==0 || --v->nRef>0 ) return;
  for(pp=&gVersions; *pp && *pp!=v; pp=&(*pp)->pNext){}
  if( *pp ) *pp = v->pNext;
  *pH = v->pSrc->h; *pSeq = v->info.seq;
  free(v->aHash);
  free(v);
}

static void releaseGo(uint64_t h, uint64_t seq){
  if( h && !gForked ) verneuilGoSnapRelease(h, seq);
}

/* Patch the epoch of v into its header copy. */
static void patchHeader(SVersion *v){
  unsigned char *p = v->hdr;
  uint32_t e = v->info.seq ? ++gEpoch : 0;
  int validFor;
  if( v->nHdr<VSNAP_HEADER_LEN ) return;
  validFor = memcmp(p+24, p+92, 4)==0;
  p[24] = e>>24; p[25] = e>>16; p[26] = e>>8; p[27] = e;
  if( validFor ) memcpy(p+92, p+24, 4);
  /* A version captured in WAL mode says WAL (2) in bytes 18-19; the
  ** replica has no shared memory and no -wal: present it in rollback mode
  ** (docs/ARCHITECTURE.md, WAL replication). */
  if( p[18]==2 && p[19]==2 ){ p[18] = 1; p[19] = 1; }
}

/* Make src's current version the one Go says (asking it to refresh when
** force), and pin it for file p (if not 0). Called without gMutex. */
static int sourceBegin(SSource *src, SFile *p, int force){
  vsnap_info info;
  SVersion *v = 0, *vNew = 0, *vOld = 0;
  uint64_t relH = 0, relSeq = 0, rel2H = 0, rel2Seq = 0;
  uint64_t curSeq;
  int64_t now = monoNanos();
  int rc;

  pthread_mutex_lock(&gMutex);
  /* Within the interval, or in a forked child (no refresh there): keep
  ** the current version. */
  if( !force && src->pCur && (now<src->nextCheck || gForked) ){
    v = src->pCur;
    if( p && p->pVer!=v ){
      vOld = p->pVer;
      v->nRef++;
      p->pVer = v;
      versionUnref(vOld, &relH, &relSeq);
    }
    pthread_mutex_unlock(&gMutex);
    releaseGo(relH, relSeq);
    return SQLITE_OK;
  }
  curSeq = src->pCur ? src->pCur->info.seq : 0;
  gSnapStats.begins++;
  pthread_mutex_unlock(&gMutex);

  if( gForked ) return forkedError(SQLITE_IOERR_READ, "refresh");
  memset(&info, 0, sizeof(info));
  rc = verneuilGoSnapBegin(src->h, force, curSeq, &info);
  if( rc!=SQLITE_OK ) return rc;
  if( info.seq!=curSeq ){
    /* A version C has not seen: Go holds it for us; fetch its hashes. */
    vNew = (SVersion*)calloc(1, sizeof(*vNew));
    if( vNew ) vNew->aHash = (unsigned char*)malloc((size_t)info.nChunk*VSNAP_HASH_LEN + 1);
    if( vNew==0 || vNew->aHash==0
     || verneuilGoSnapHashes(src->h, info.seq, vNew->aHash, info.nChunk,
                             vNew->hdr, &vNew->nHdr)!=SQLITE_OK ){
      if( vNew ){ free(vNew->aHash); free(vNew); }
      verneuilGoSnapRelease(src->h, info.seq);
      return SQLITE_IOERR_READ;
    }
    vNew->pSrc = src;
    vNew->info = info;
    vNew->nRef = 0;
  }

  pthread_mutex_lock(&gMutex);
  if( vNew ){
    /* Another thread may have created it meanwhile. */
    for(v=gVersions; v; v=v->pNext){
      if( v->pSrc==src && v->info.seq==info.seq ) break;
    }
    if( v ){
      rel2H = src->h; rel2Seq = info.seq;
      free(vNew->aHash); free(vNew);
    }else{
      v = vNew;
      patchHeader(v);
      v->pNext = gVersions; gVersions = v;
      gSnapStats.versions++;
    }
  }else{
    v = src->pCur;
  }
  if( v!=src->pCur && (src->pCur==0 || v->info.seq>src->pCur->info.seq) ){
    vOld = src->pCur;
    v->nRef++;
    src->pCur = v;
    versionUnref(vOld, &relH, &relSeq);
  }else if( v->nRef==0 ){
    /* Created, but another thread made a newer version current. */
    v->nRef = 1;
    versionUnref(v, &rel2H, &rel2Seq);
  }
  /* Never move a file backwards: pin the newest of the two. */
  v = src->pCur;
  src->nextCheck = info.intervalNanos<0 ? INT64_MAX : now+info.intervalNanos;
  if( p && p->pVer!=v ){
    uint64_t h3 = 0, s3 = 0;
    vOld = p->pVer;
    v->nRef++;
    p->pVer = v;
    versionUnref(vOld, &h3, &s3);
    pthread_mutex_unlock(&gMutex);
    releaseGo(h3, s3);
  }else{
    pthread_mutex_unlock(&gMutex);
  }
  releaseGo(relH, relSeq);
  releaseGo(rel2H, rel2Seq);
  return SQLITE_OK;
}

/* ---- io methods ---- */

static int chunkLen(const SVersion *v, int i){
  int64_t size = (int64_t)1<<v->info.chunkShift;
  int64_t rest = v->info.length - (int64_t)i*size;
  return (int)(rest<size ? rest : size);
}

/* A chunk in memory whose length is not the one version v gives chunk i:
** the manifest lies about it (same hash, same bytes, same length). */
static int chunkLenMismatch(const SVersion *v, int i, int have, int want){
  sqlite3_log(SQLITE_IOERR_CORRUPTFS, "verneuil_snapshot: version %llu names for chunk %d "
              "(%d bytes) a chunk of %d bytes: corrupt manifest",
              (unsigned long long)v->info.seq, i, want, have);
  return SQLITE_IOERR_CORRUPTFS;
}

/* Copy n bytes at offset within chunk i of v into dst. */
static int readChunk(SFile *p, SVersion *v, int i, unsigned char *dst, int within, int n){
  const unsigned char *h = v->aHash + (size_t)i*VSNAP_HASH_LEN;
  int len = chunkLen(v, i);
  unsigned char *a;
  SChunk *c;
  int rc;
  pthread_mutex_lock(&gMutex);
  c = cacheFind(h);
  if( c && c->n!=len ){
    /* The version names, for a chunk of len bytes, the hash of a chunk of
    ** another length: a corrupt or hostile manifest. Never serve it. */
    pthread_mutex_unlock(&gMutex);
    return chunkLenMismatch(v, i, c->n, len);
  }
  if( c ){
    lruUnlink(c); lruFront(c);
    memcpy(dst, c->a+within, n);
    pthread_mutex_unlock(&gMutex);
    return SQLITE_OK;
  }
  gSnapStats.misses++;
  a = gForked ? 0 : chunkAlloc(len);
  pthread_mutex_unlock(&gMutex);
  if( gForked ) return forkedError(SQLITE_IOERR_READ, "read of a chunk not in memory");
  if( a==0 ) return SQLITE_IOERR_NOMEM;
  rc = verneuilGoSnapChunk(p->pSrc->h, v->info.seq, i, a, len);
  if( rc!=SQLITE_OK ){
    pthread_mutex_lock(&gMutex);
    chunkFree(a, len);
    pthread_mutex_unlock(&gMutex);
    return rc;
  }
  pthread_mutex_lock(&gMutex);
  c = cacheInsert(h, a, len);
  if( c && c->n!=len ){
    int cn = c->n;
    pthread_mutex_unlock(&gMutex);
    return chunkLenMismatch(v, i, cn, len);
  }
  if( c ){
    memcpy(dst, c->a+within, n);
  }
  pthread_mutex_unlock(&gMutex);
  return c ? SQLITE_OK : SQLITE_IOERR_NOMEM;
}

static int sRead(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off){
  SFile *p = (SFile*)f;
  SVersion *v = p->pVer;
  unsigned char *dst = (unsigned char*)buf;
  int64_t end, have;
  int shift, rc;
  __atomic_fetch_add(&gSnapStats.reads, 1, __ATOMIC_RELAXED);
  if( v==0 ) return SQLITE_IOERR_READ;
  shift = v->info.chunkShift;
  end = off + amt;
  have = end<=v->info.length ? end : v->info.length;
  while( off<have ){
    int i = (int)(off>>shift);
    int within = (int)(off - ((int64_t)i<<shift));
    int n = chunkLen(v, i) - within;
    if( n>have-off ) n = (int)(have-off);
    rc = readChunk(p, v, i, dst, within, n);
    if( rc!=SQLITE_OK ) return rc;
    /* The header: the epoch instead of the change counter. */
    if( off<v->nHdr ){
      int m = (int)(v->nHdr - off);
      memcpy(dst, v->hdr+off, m<n ? m : n);
    }
    dst += n; off += n;
  }
  if( off<end ){
    memset(dst, 0, (size_t)(end-off));
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

static int sWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o){
  (void)f; (void)b; (void)n; (void)o; return SQLITE_READONLY;
}
static int sTruncate(sqlite3_file *f, sqlite3_int64 sz){
  (void)f; (void)sz; return SQLITE_READONLY;
}
static int sSync(sqlite3_file *f, int flags){
  (void)f; (void)flags; return SQLITE_OK;
}
static int sFileSize(sqlite3_file *f, sqlite3_int64 *pSize){
  SFile *p = (SFile*)f;
  *pSize = p->pVer ? p->pVer->info.length : 0;
  return SQLITE_OK;
}
static int sLock(sqlite3_file *f, int e){
  SFile *p = (SFile*)f;
  if( e>SQLITE_LOCK_SHARED ) return SQLITE_READONLY;
  if( e==SQLITE_LOCK_SHARED && p->lock==SQLITE_LOCK_NONE ){
    int rc = sourceBegin(p->pSrc, p, 0);
    if( rc!=SQLITE_OK ) return rc;
  }
  p->lock = e;
  return SQLITE_OK;
}
static int sUnlock(sqlite3_file *f, int e){
  SFile *p = (SFile*)f;
  if( e<p->lock ) p->lock = e;
  return SQLITE_OK;
}
static int sCheckReservedLock(sqlite3_file *f, int *pOut){
  (void)f; *pOut = 0; return SQLITE_OK;
}

static int isPragma(const char *z, const char *zWant){
  return z && sqlite3_stricmp(z, zWant)==0;
}

static int sFileControl(sqlite3_file *f, int op, void *pArg){
  SFile *p = (SFile*)f;
  if( op==SQLITE_FCNTL_HAS_MOVED ){
    *(int*)pArg = 0;
    return SQLITE_OK;
  }
  if( op==SQLITE_FCNTL_PRAGMA ){
    char **az = (char**)pArg;
    char *zOut = 0;
    int rc, force;
    if( isPragma(az[1], "journal_mode") && az[2] ){
      az[0] = sqlite3_mprintf("verneuil_snapshot: a read replica is read only: "
                              "journal_mode cannot change");
      return SQLITE_READONLY;
    }
    if( az[1]==0 || sqlite3_strnicmp(az[1], "verneuil_snapshot", 17)!=0 ){
      return SQLITE_NOTFOUND;
    }
    if( gForked ){
      az[0] = sqlite3_mprintf("%s", gForkedMsg);
      return forkedError(SQLITE_ERROR, az[1]);
    }
    force = isPragma(az[1], "verneuil_snapshot_refresh");
    if( force ){
      /* Check now; a file in a read transaction keeps its version. */
      rc = sourceBegin(p->pSrc, p->lock==SQLITE_LOCK_NONE ? p : 0, 1);
      if( rc!=SQLITE_OK ) return rc;
    }
    rc = verneuilGoSnapPragma(p->pSrc->h, az[1], az[2],
        p->pVer ? p->pVer->info.seq : 0, p->pVer ? p->pVer->info.commitNanos : 0, &zOut);
    if( zOut ){
      az[0] = sqlite3_mprintf("%s", zOut);
      free(zOut);
    }
    return rc;
  }
  return SQLITE_NOTFOUND;
}
static int sSectorSize(sqlite3_file *f){ (void)f; return 4096; }
static int sDeviceCharacteristics(sqlite3_file *f){ (void)f; return 0; }

static int sClose(sqlite3_file *f){
  SFile *p = (SFile*)f;
  SSource *src = p->pSrc, **pp;
  uint64_t h1 = 0, s1 = 0, h2 = 0, s2 = 0, hSrc = 0;
  pthread_mutex_lock(&gMutex);
  versionUnref(p->pVer, &h1, &s1);
  p->pVer = 0;
  if( src ){
    hSrc = src->h;
    if( --src->nRef==0 ){
      versionUnref(src->pCur, &h2, &s2);
      for(pp=&gSources; *pp && *pp!=src; pp=&(*pp)->pNext){}
      if( *pp ) *pp = src->pNext;
      free(src);
    }
  }
  p->pSrc = 0;
  pthread_mutex_unlock(&gMutex);
  releaseGo(h1, s1);
  releaseGo(h2, s2);
  if( hSrc && !gForked ) verneuilGoSnapClose(hSrc);
  return SQLITE_OK;
}

static const sqlite3_io_methods gSnapIo = {
  1, sClose, sRead, sWrite, sTruncate, sSync, sFileSize, sLock, sUnlock,
  sCheckReservedLock, sFileControl, sSectorSize, sDeviceCharacteristics,
  0, 0, 0, 0, 0, 0
};

/* ---- the VFS ---- */

static int snapOpen(sqlite3_vfs *pVfs, const char *zName, sqlite3_file *f,
                    int flags, int *pOutFlags){
  SFile *p = (SFile*)f;
  SSource *src;
  uint64_t h;
  char *zErr = 0;
  int rc;
  (void)pVfs;
  if( zName==0 || (flags & (SQLITE_OPEN_TEMP_DB|SQLITE_OPEN_TEMP_JOURNAL
                           |SQLITE_OPEN_TRANSIENT_DB|SQLITE_OPEN_SUBJOURNAL)) ){
    /* Temp files (sorts, temp tables): the unix VFS, deleted on close. */
    return gUnix->xOpen(gUnix, zName, f, flags, pOutFlags);
  }
  memset(p, 0, sizeof(*p));
  if( (flags & SQLITE_OPEN_MAIN_DB)==0 ){
    sqlite3_log(SQLITE_CANTOPEN, "verneuil_snapshot: %s: a read replica opens no "
                "journal, WAL or other file", zName);
    return SQLITE_CANTOPEN;
  }
  if( gForked ) return forkedError(SQLITE_CANTOPEN, zName);
  h = verneuilGoSnapOpen((char*)zName,
                         (char*)sqlite3_uri_parameter(zName, "version"),
                         (char*)sqlite3_uri_parameter(zName, "at"), &zErr);
  if( h==0 ){
    sqlite3_log(SQLITE_CANTOPEN, "verneuil_snapshot: %s", zErr ? zErr : zName);
    free(zErr);
    return SQLITE_CANTOPEN;
  }
  pthread_mutex_lock(&gMutex);
  for(src=gSources; src && src->h!=h; src=src->pNext){}
  if( src==0 ){
    src = (SSource*)calloc(1, sizeof(*src));
    if( src ){
      src->h = h;
      src->pNext = gSources; gSources = src;
    }
  }
  if( src ) src->nRef++;
  pthread_mutex_unlock(&gMutex);
  if( src==0 ){
    verneuilGoSnapClose(h);
    return SQLITE_NOMEM;
  }
  p->pSrc = src;
  p->base.pMethods = &gSnapIo;
  /* SQLite reads the header before it locks: pin a version now. */
  rc = sourceBegin(src, p, 0);
  if( rc!=SQLITE_OK ){
    sClose(f);
    p->base.pMethods = 0;
    return SQLITE_CANTOPEN;
  }
  if( pOutFlags ){
    *pOutFlags = (flags & ~(SQLITE_OPEN_READWRITE|SQLITE_OPEN_CREATE))
               | SQLITE_OPEN_READONLY;
  }
  return SQLITE_OK;
}

static int snapDelete(sqlite3_vfs *v, const char *z, int syncDir){
  (void)v; (void)z; (void)syncDir; return SQLITE_READONLY;
}
static int snapAccess(sqlite3_vfs *v, const char *z, int flags, int *pOut){
  (void)v; (void)z; (void)flags; *pOut = 0; return SQLITE_OK;
}
/* Replica names and keys are kept as they are; paths become absolute. */
static int snapFullPathname(sqlite3_vfs *v, const char *z, int n, char *zOut){
  (void)v;
  if( strncmp(z, "verneuil:", 9)==0
   || (strchr(z, '/')==0 && strlen(z)>5 && z[4]=='-' && access(z, F_OK)!=0) ){
    if( (int)strlen(z)>=n ) return SQLITE_CANTOPEN;
    memcpy(zOut, z, strlen(z)+1);
    return SQLITE_OK;
  }
  return gUnix->xFullPathname(gUnix, z, n, zOut);
}
static void *snapDlOpen(sqlite3_vfs *v, const char *z){
  (void)v; return gUnix->xDlOpen(gUnix, z);
}
static void snapDlError(sqlite3_vfs *v, int n, char *z){
  (void)v; gUnix->xDlError(gUnix, n, z);
}
static void (*snapDlSym(sqlite3_vfs *v, void *h, const char *z))(void){
  (void)v; return gUnix->xDlSym(gUnix, h, z);
}
static void snapDlClose(sqlite3_vfs *v, void *h){
  (void)v; gUnix->xDlClose(gUnix, h);
}
static int snapRandomness(sqlite3_vfs *v, int n, char *z){
  (void)v; return gUnix->xRandomness(gUnix, n, z);
}
static int snapSleep(sqlite3_vfs *v, int us){
  (void)v; return gUnix->xSleep(gUnix, us);
}
static int snapCurrentTime(sqlite3_vfs *v, double *p){
  (void)v; return gUnix->xCurrentTime(gUnix, p);
}
static int snapGetLastError(sqlite3_vfs *v, int n, char *z){
  (void)v; return gUnix->xGetLastError ? gUnix->xGetLastError(gUnix, n, z) : 0;
}
static int snapCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *p){
  (void)v; return gUnix->xCurrentTimeInt64(gUnix, p);
}

int vsnap_register(const char *zName, int64_t memMax){
  int rc;
  pthread_mutex_lock(&gMutex);
  if( memMax>0 ) gMemMax = memMax;
  pthread_mutex_unlock(&gMutex);
  if( gUnix ) return SQLITE_OK;
  gUnix = sqlite3_vfs_find("unix");
  if( gUnix==0 || gUnix->iVersion<2 ) return SQLITE_ERROR;
  if( !gAtfork ){
    if( pthread_atfork(snapBeforeFork, snapParentAfterFork, snapChildAfterFork)!=0 ){
      gUnix = 0;
      return SQLITE_ERROR;
    }
    gAtfork = 1;
  }
  strncpy(gSnapName, zName, sizeof(gSnapName)-1);
  memset(&gSnapVfs, 0, sizeof(gSnapVfs));
  gSnapVfs.iVersion = 2;
  gSnapVfs.szOsFile = gUnix->szOsFile>(int)sizeof(SFile) ? gUnix->szOsFile : (int)sizeof(SFile);
  gSnapVfs.mxPathname = gUnix->mxPathname;
  gSnapVfs.zName = gSnapName;
  gSnapVfs.xOpen = snapOpen;
  gSnapVfs.xDelete = snapDelete;
  gSnapVfs.xAccess = snapAccess;
  gSnapVfs.xFullPathname = snapFullPathname;
  gSnapVfs.xDlOpen = snapDlOpen;
  gSnapVfs.xDlError = snapDlError;
  gSnapVfs.xDlSym = snapDlSym;
  gSnapVfs.xDlClose = snapDlClose;
  gSnapVfs.xRandomness = snapRandomness;
  gSnapVfs.xSleep = snapSleep;
  gSnapVfs.xCurrentTime = snapCurrentTime;
  gSnapVfs.xGetLastError = snapGetLastError;
  gSnapVfs.xCurrentTimeInt64 = snapCurrentTimeInt64;
  rc = sqlite3_vfs_register(&gSnapVfs, 0);
  if( rc!=SQLITE_OK ) gUnix = 0;
  return rc;
}
