/*
** shim.h: the C half of the verneuil replicating VFS.
**
** The VFS wraps SQLite's "unix" VFS. Every method is delegated; the main
** database file of a connection additionally records which chunks were
** written, and calls Go once per committed write transaction (see shim.c).
*/
#ifndef VERNEUIL_SHIM_H
#define VERNEUIL_SHIM_H

#include <stdint.h>

/* Length of the version id kept in the user.verneuil.version xattr:
** 8 bytes big-endian sequence number + 16 bytes of unique id. */
#define VSHIM_XATTR_LEN 24
#define VSHIM_HEADER_LEN 100

/* Capture kinds passed to Go. */
#define VSHIM_COMMIT   1  /* a write transaction committed */
#define VSHIM_ROLLBACK 2  /* writes happened but no commit was seen */
#define VSHIM_CHECK    3  /* read transaction: verify the file identity */
#define VSHIM_RESCAN   4  /* committed, but the dirty set is incomplete */

/* The empty file that a child forked without exec creates in a database's
** spool directory when it writes the database (spool.RescanMarker in Go). */
#define VSHIM_RESCAN_MARKER "needs-rescan"

/* Register the replicating VFS under zName (normally "verneuil"). It wraps the
** VFS that "unix" names at the time of the first call; zName (shorter than
** 64 bytes) is copied. chunkShift is log2 of
** the chunk size (16 for 64 KiB). Returns an SQLite result code. */
int vshim_register(const char *zName, int makeDefault, int chunkShift);

/* Accessors that Go calls on the file handed to it during a capture. They use
** the underlying unix file, so no extra file descriptor is opened (closing
** one would drop this process's POSIX locks on the database). */
int vshim_read(void *pFile, void *buf, int n, int64_t off);
int64_t vshim_size(void *pFile);
/* Returns the xattr length (0 when absent), or -1 when xattrs are unsupported
** or unreadable. */
int vshim_get_xattr(void *pFile, unsigned char *buf, int cap);
/* The SQLite lock level the capture's connection holds on the file. */
int vshim_lock_level(void *pFile);

/* Sliced reads outside a capture (shimfiles.c). vshim_slice_open, called
** during a capture, opens a private file on the path of the capture's file
** through the wrapped unix VFS (which shares its per-inode lock
** bookkeeping, so closing it never drops other connections' POSIX locks);
** 0 on failure. vshim_slice_lock takes SHARED on it (SQLITE_BUSY when a
** writer holds PENDING or more: never waits), vshim_slice_unlock releases
** it. vshim_slice_stamp describes the file as it is now: identity, size
** and timestamps, for a reader to check that nothing changed. */
typedef struct vshim_stamp {
  uint64_t ino;
  int64_t size, mtimeSec, mtimeNsec, ctimeSec, ctimeNsec;
  int xattrLen;                        /* -1: xattrs unsupported */
  unsigned char xattr[VSHIM_XATTR_LEN];
  unsigned char header[VSHIM_HEADER_LEN];
} vshim_stamp;
void *vshim_slice_open(void *pFile);
int vshim_slice_lock(void *pSlice);
int vshim_slice_unlock(void *pSlice);
int vshim_slice_read(void *pSlice, void *buf, int n, int64_t off);
int vshim_slice_stamp(void *pSlice, vshim_stamp *out);
void vshim_slice_close(void *pSlice);

/* Statistics (racy counters, for tests and benchmarks). */
typedef struct vshim_stats {
  int64_t commits;     /* captures of kind COMMIT handed to Go */
  int64_t rollbacks;   /* transactions that wrote but did not commit */
  int64_t checks;      /* identity checks of read transactions */
  int64_t xattrErrors; /* failed xattr updates */
  int64_t journalsPaired; /* journals paired with their tracked main file */
  int64_t sliceHolds;  /* SHARED holds taken for sliced rescans */
  /* WAL commit detection (prototype: counted, not captured). */
  int64_t walCommits;  /* write-lock holds that ended with new commits */
  int64_t walResets;   /* write-lock holds that restarted or emptied the WAL without a commit */
  int64_t walLastMxFrame; /* mxFrame after the last detected commit */
  int64_t walQueued;   /* WAL commits queued without a Go call (shimwalqueue.c) */
  int64_t walQueueTakes; /* queues of commits Go took */
} vshim_stats;
void vshim_get_stats(vshim_stats *out);

/* WAL commits queued without a Go call (shimwalqueue.c). vshim_walq_take
** hands Go the queued commits of a database (1 when there were some) and,
** unless keep is set, disables queueing until vshim_walq_enable. */
typedef struct vshim_walq {
  unsigned char from[48], to[48]; /* wal-index headers before and after them */
  int nCommit;
  int ok;
  int64_t lastNs;                 /* CLOCK_REALTIME of the last one */
  unsigned char *aFrames;         /* the frames after from, malloc'd */
  int64_t nFrames;
} vshim_walq;
int vshim_walq_take(uint64_t id, int keep, vshim_walq *out);
void vshim_walq_enable(uint64_t id, const unsigned char *pos, const uint32_t *aChunk, int nChunk, int chunkShift);
/* A duplicate of the descriptor of an open -wal of the database (the caller
** closes it), or -1. */
int vshim_walq_dup_wal(uint64_t id);

/* Make the VFS named zName the default (tests restore "unix"). */
int vshim_make_default(const char *zName);

#endif
