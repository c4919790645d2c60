/*
** snapshot.h: the C half of the read-replica VFS "verneuil_snapshot"
** (snapshot.c); the Go half is internal/replica, reached through the
** trampolines of snapexport.go.
*/
#ifndef VERNEUIL_SNAPSHOT_H
#define VERNEUIL_SNAPSHOT_H

#include <stdint.h>

#define VSNAP_HASH_LEN 32
#define VSNAP_HEADER_LEN 100

/* A version of a replicated database, as Go describes it to C. */
typedef struct vsnap_info {
  uint64_t seq;            /* version number */
  int64_t length;          /* database length in bytes */
  int64_t commitNanos;     /* the source's commit time (unix ns) */
  int64_t intervalNanos;   /* refresh interval; <0: pinned, never refresh */
  int chunkShift;          /* log2 of the chunk size */
  int nChunk;              /* number of chunks */
} vsnap_info;

/* Register the VFS zName (copied) over "unix", with memMax bytes of
** in-memory chunk cache per process. Returns an SQLite result code. */
int vsnap_register(const char *zName, int64_t memMax);

/* Whether the in-memory chunk cache holds the chunk (readahead skips it). */
int vsnap_cache_has(const unsigned char *hash);

/* Counters, for tests and benchmarks. */
typedef struct vsnap_stats {
  int64_t reads;        /* xRead calls */
  int64_t misses;       /* chunk misses handed to Go */
  int64_t begins;       /* read transactions that called Go */
  int64_t versions;     /* versions created */
  int64_t cacheBytes;   /* bytes in the chunk cache now */
  int64_t evictions;    /* chunks evicted */
} vsnap_stats;
void vsnap_get_stats(vsnap_stats *out);

#endif
