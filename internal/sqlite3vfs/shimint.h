/*
** shimint.h: what the C files of the replicating VFS share (shim.c: the
** VFS and its capturing io methods; shimfiles.c: the process-wide lists of
** open files, the rescan markers, fork handling and the pass-through io
** methods). Include after sqlite3.h (or sqlite3ext.h) and shim.h. Every
** symbol is hidden: none leaves libverneuil.so.
*/
#ifndef VERNEUIL_SHIMINT_H
#define VERNEUIL_SHIMINT_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define VSHIM_HIDDEN __attribute__((visibility("hidden")))
#define VSHIM_XATTR_NAME "user.verneuil.version"

/* A SHARED hold of ours on a database file that an application's busy
** EXCLUSIVE waits for (shimfiles.c: slices, and captures in tUnlock). */
typedef struct VHold VHold;
struct VHold {
  uint64_t ino;            /* inode of the file, 0 when unknown */
  int held;                /* SHARED held or being taken (gSliceMutex) */
  /* a capture's hold that outlives its capture (vshimHoldLinger): until
  ** then, or until the connection unlocks or locks again; 0 otherwise */
  struct timespec lingerUntil;
  int listed;              /* in gHolds (gSliceMutex) */
  VHold *pNext;            /* gHolds (gSliceMutex) */
};

typedef struct VFile VFile;
struct VFile {
  sqlite3_file base;        /* our io methods */
  sqlite3_file *pReal;      /* the unix file, allocated right after VFile */
  const char *zPath;        /* full path, owned by SQLite, valid until close */
  uint64_t handle;          /* Go tracker handle; 0 = not replicated */
  int fd;                   /* unix file descriptor if verified, else -1 */
  int lockLevel;            /* lock level currently held */
  int exclusiveMode;        /* locking_mode=EXCLUSIVE believed in force */
  int journalInMemory;      /* journal_mode=MEMORY or OFF: no journal file */
  int wantCheck;            /* verify identity at the next read unlock */
  int txnStarted;           /* first write of the transaction happened */
  int committed;            /* COMMIT_PHASETWO seen for the current writes */
  int xattrUnsupported;     /* the file system refused user xattrs */
  int readOnly;             /* opened (or downgraded by unix to) read-only */
  int dirtyLost;            /* out of memory while tracking: rescan */
  /* dirty chunks: bitmap + list of indices */
  unsigned char *aBits; int64_t nBitsBytes;
  uint32_t *aDirty; int nDirty, nDirtyAlloc;
  /* per dirty chunk (same index as aDirty): the byte range [lo, hi) of the
  ** chunk written in this transaction, as pairs; Go re-reads only that range
  ** of a chunk whose earlier copy it still holds (extentsLost: read whole
  ** chunks) */
  uint32_t *aExtent; int extentsLost;
  /* identity before the transaction, and the new version id */
  unsigned char preXattr[VSHIM_XATTR_LEN]; int preXattrLen;
  unsigned char preHeader[VSHIM_HEADER_LEN];
  unsigned char postXattr[VSHIM_XATTR_LEN]; int postXattrLen;
  uint64_t seq;             /* sequence number of the transaction */
  VFile *pNextMain;         /* list of open tracked main files */
  VFile *pMain;             /* for a journal: its tracked main file */
  VFile *pNextJournal;      /* list of journals paired with a main file */
  int isJournal;            /* in the journal list */
  int nPin;                 /* main file: journals using it right now */
  int nPath;                /* strlen(zPath) */
  uint64_t ino;             /* inode of the open file, part of its identity */
  VHold capHold;            /* a capture's hold on this file (tUnlock) */
  int capHoldLinger;        /* capHold outlives the capture: the connection kept
                            ** SHARED, ended at its next lock or unlock */
  const char *zMarker;      /* rescan marker path (shimfiles.c), or 0 */
  volatile void *pShm0;     /* wal-index region 0, while mapped */
  unsigned char walPrior[48]; /* wal-index header when the write lock was taken */
  int walWriter;            /* this connection holds the WAL write lock */
  int walOpen;              /* the wal-index is mapped: WAL mode (shimwal.c) */
  int walUnlockSeen;        /* a write-lock release since the last COMMIT_PHASETWO */
  int walHeap;              /* main: its connection's -wal is open with the wal-index
                            ** in heap memory (shimwalheap.c) */
  uint64_t walHeapSession;  /* main: changes when the -wal opens and when EXCLUSIVE
                            ** is released: Go continues only within one session */
  uint64_t walHeapIno;      /* main: inode of that -wal when it opened */
  int isPairedWal;          /* a -wal paired with its main file (in the journal list) */
  /* a -wal file (shimwalfile.c): the list of open -wal files, and the
  ** bytes written through it in the current hold of the WAL write lock */
  VFile *pNextWal;
  int isWal;                /* in that list */
  int walBufState;          /* 0: nothing written, 1: aWalBuf valid, 2: unusable, 3: not recording */
  unsigned char *aWalBuf;   /* bytes [walBufStart, walBufStart+nWalBuf) */
  int64_t walBufStart, nWalBuf, nWalBufAlloc;
  struct VWalQ *pWalQ;      /* main, and -wal of a replicated database: its database's
                            ** queue of commits and list of -wal files (shimwalqueue.c) */
};

VSHIM_HIDDEN extern int vshimForked;  /* in a child of fork() without exec: no Go */
VSHIM_HIDDEN extern int vshimTrace;   /* VERNEUIL_SHIM_TRACE: debug trace on stderr */
#define TRACE(...) do{ if( vshimTrace ) fprintf(stderr, "verneuil-shim: " __VA_ARGS__); }while(0)

/* Tracked main files and the journals paired with them (shimfiles.c). */
VSHIM_HIDDEN void vshimLinkMain(VFile *p);
VSHIM_HIDDEN VFile *vshimLinkJournal(VFile *p, const char *zJournal);
VSHIM_HIDDEN VFile *vshimPairWal(VFile *p, const char *zWal);
VSHIM_HIDDEN VFile *vshimPinMainOfJournal(const char *zJournal);
VSHIM_HIDDEN VFile *vshimPinMainOf(VFile *pJ);
VSHIM_HIDDEN void vshimUnpinMain(VFile *p);
VSHIM_HIDDEN void vshimUnlinkMain(VFile *p);
VSHIM_HIDDEN void vshimUnlinkJournal(VFile *p);

/* Rescan markers of the databases registered with Go, and fork handling. */
VSHIM_HIDDEN const char *vshimRegisterMarker(const char *zPath, const char *zSpool);
VSHIM_HIDDEN const char *vshimFindMarker(const char *zPath);
VSHIM_HIDDEN void vshimMarkRescan(const char *zMarker);
VSHIM_HIDDEN int vshimAtforkInit(void);

/* The wrapped "unix" VFS (shim.c); SHARED holds of sliced rescans. */
VSHIM_HIDDEN sqlite3_vfs *vshimOrigVfs(void);
VSHIM_HIDDEN int64_t vshimSliceHolds(void);

/* WAL mode (shimwal.c): the wal-index methods of tracked main files. */
VSHIM_HIDDEN int vshimWalShmMap(sqlite3_file *f, int i, int sz, int w, void volatile **pp);
VSHIM_HIDDEN int vshimWalShmLock(sqlite3_file *f, int ofst, int n, int flags);
VSHIM_HIDDEN int vshimWalShmUnmap(sqlite3_file *f, int del);
VSHIM_HIDDEN void vshimWalStats(vshim_stats *out);
VSHIM_HIDDEN void vshimWalPhaseTwo(VFile *p);

/* WAL mode with the wal-index in heap memory (shimwalheap.c). */
VSHIM_HIDDEN void vshimWalHeapOpen(VFile *pWal, const char *zWal);
VSHIM_HIDDEN void vshimWalHeapClose(VFile *pWal);
VSHIM_HIDDEN void vshimWalHeapUnlock(VFile *p, int e);
VSHIM_HIDDEN void vshimWalHeapPhaseTwo(VFile *p);
/* WAL commits queued without a Go call (shimwalqueue.c). */
VSHIM_HIDDEN void vshimWalQAttach(VFile *p, uint64_t id);
VSHIM_HIDDEN void vshimWalQDetach(VFile *p);
VSHIM_HIDDEN int vshimWalQOffer(VFile *p, const unsigned char *prior, const unsigned char *now, VFile *pW);
VSHIM_HIDDEN void vshimWalQDisable(VFile *p);
VSHIM_HIDDEN void vshimWalQueueStats(vshim_stats *out);
VSHIM_HIDDEN VFile **vshimWalQFiles(struct VWalQ *q);
VSHIM_HIDDEN void vshimWalQRef(struct VWalQ *q);
VSHIM_HIDDEN void vshimWalQForkLock(int lock);
VSHIM_HIDDEN VFile *vshimFindMainLocked(const char *zFile, const char *zSuffix);
/* Open -wal files and their descriptors (shimwalfile.c). */
VSHIM_HIDDEN int vshimFindFd(sqlite3_file *pReal, const char *zPath);
VSHIM_HIDDEN void vshimListLock(void);
VSHIM_HIDDEN void vshimListUnlock(void);
VSHIM_HIDDEN void vshimLinkWal(VFile *p, const char *zName);
VSHIM_HIDDEN int vshimDupWalFd(VFile *pMain);
VSHIM_HIDDEN void vshimWalHoldStart(VFile *pMain);
VSHIM_HIDDEN VFile *vshimWalWrittenFile(VFile *pMain);

/* Pass-through io methods. */
VSHIM_HIDDEN int vshimRead(sqlite3_file *f, void *b, int n, sqlite3_int64 o);
VSHIM_HIDDEN int vshimWrite(sqlite3_file *f, const void *b, int n, sqlite3_int64 o);
VSHIM_HIDDEN int vshimTruncate(sqlite3_file *f, sqlite3_int64 sz);
VSHIM_HIDDEN int vshimSync(sqlite3_file *f, int flags);
VSHIM_HIDDEN int vshimFileSize(sqlite3_file *f, sqlite3_int64 *pSize);
VSHIM_HIDDEN void vshimHoldBegin(VHold *h, uint64_t ino);
VSHIM_HIDDEN void vshimHoldEnd(VHold *h, int released);
VSHIM_HIDDEN void vshimHoldLinger(VHold *h);
VSHIM_HIDDEN int vshimLock(sqlite3_file *f, int e);
VSHIM_HIDDEN int vshimUnlock(sqlite3_file *f, int e);
VSHIM_HIDDEN int vshimCheckReservedLock(sqlite3_file *f, int *pOut);
VSHIM_HIDDEN int vshimFileControl(sqlite3_file *f, int op, void *pArg);
VSHIM_HIDDEN int vshimSectorSize(sqlite3_file *f);
VSHIM_HIDDEN int vshimDeviceCharacteristics(sqlite3_file *f);
VSHIM_HIDDEN int vshimShmMap(sqlite3_file *f, int i, int sz, int w, void volatile **pp);
VSHIM_HIDDEN int vshimShmLock(sqlite3_file *f, int o, int n, int fl);
VSHIM_HIDDEN void vshimShmBarrier(sqlite3_file *f);
VSHIM_HIDDEN int vshimShmUnmap(sqlite3_file *f, int del);
VSHIM_HIDDEN int vshimFetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp);
VSHIM_HIDDEN int vshimUnfetch(sqlite3_file *f, sqlite3_int64 o, void *pp);

#endif
