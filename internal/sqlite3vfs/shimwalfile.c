/*
** shimwalfile.c: the -wal files open through the replicating VFS, so that
** the WAL capture (shimwal.c) reads the frames through a descriptor SQLite
** already holds instead of opening the -wal at every commit.
**
** Every connection of a tracked database in WAL mode opens the -wal
** through this VFS; the list holds each such file with unix's descriptor
** (when fstat proves it is the file). At the release of the WAL write
** lock, the capture duplicates the descriptor of one open -wal of the
** database under the list's mutex (a file of another connection may close
** meanwhile) and hands the duplicate to Go, which closes nothing: the
** duplicate is closed here when Go returns. All of one process's
** connections share one -wal: SQLite deletes or replaces it only with an
** EXCLUSIVE lock on the database, which no connection can get while
** another has the WAL open (WAL mode keeps SHARED on the database).
*/
#ifdef VERNEUIL_EXTENSION
# include "sqlite3ext.h"
SQLITE_EXTENSION_INIT3
#else
# include "sqlite3.h"
#endif

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "shimint.h"

static VFile *gWalList = 0;  /* open -wal files, under vshimListLock */

/* A -wal file zName opened (pReal is open): remember it and its
** descriptor. */
void vshimLinkWal(VFile *p, const char *zName){
  p->zPath = zName;
  p->nPath = (int)strlen(zName);
  p->fd = vshimFindFd(p->pReal, zName);
  vshimListLock();
  p->isWal = 1;
  p->pNextWal = gWalList;
  gWalList = p;
  vshimListUnlock();
}

/* A -wal file closes (before unix closes its descriptor). */
void vshimUnlinkWal(VFile *p){
  VFile **pp;
  vshimListLock();
  for(pp=&gWalList; *pp; pp=&(*pp)->pNextWal){
    if( *pp==p ){ *pp = p->pNextWal; break; }
  }
  p->isWal = 0;
  p->fd = -1;
  vshimListUnlock();
}

/* A duplicate of the descriptor of an open -wal of the main file pMain
** (the caller closes it), or -1 when none is open through this VFS with
** a known descriptor. */
int vshimDupWalFd(VFile *pMain){
  VFile *p;
  int fd = -1;
  if( pMain->zPath==0 ) return -1;
  vshimListLock();
  for(p=gWalList; p; p=p->pNextWal){
    if( p->fd>=0 && p->nPath==pMain->nPath+4
     && memcmp(p->zPath, pMain->zPath, pMain->nPath)==0
     && memcmp(p->zPath+pMain->nPath, "-wal", 4)==0 ){
      fd = fcntl(p->fd, F_DUPFD_CLOEXEC, 0);
      break;
    }
  }
  vshimListUnlock();
  return fd;
}
