//go:build cgo && verneuil_extern

/*
** hook.c: the C half of verneuil-tclhook, linked into SQLite's testfixture.
**
** verneuil_extra_init is compiled into the testfixture's SQLite with
** -DSQLITE_EXTRA_INIT=verneuil_extra_init: sqlite3_initialize() calls it once
** initialisation has succeeded (isInit is already set, so SQLite may be called
** from here), and again after every sqlite3_shutdown()/sqlite3_initialize()
** pair. Each call
**   1. calls Go (verneuilTclInit): the first call starts replication
**      (verneuil.Start) and registers the VFS "verneuil"; every call makes it
**      the default again (os_init re-registers the real "unix" as default on
**      re-initialisation);
**   2. registers a copy of the "verneuil" VFS under the name "unix", as the
**      default, unless VERNEUIL_TCL_SHADOW_UNIX=0. The copy shadows the real
**      unix VFS (sqlite3_vfs_find returns the first match of a name), so the
**      tests that want the default VFS to be called "unix" (syscall.test,
**      mmap2.test, ...) run on the replicating VFS too. The shim's methods
**      ignore the sqlite3_vfs pointer they are given (they delegate to the
**      unix VFS captured by the first vshim_register call), so a copy with
**      another zName behaves exactly like the original. The copy is made
**      after "verneuil" is registered, so the shim never wraps itself.
**
** The Go runtime of a c-archive starts in a constructor when the program is
** loaded, and every exported Go function waits for it, so calling Go from
** here is safe whenever the testfixture first initialises SQLite.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"
#include "_cgo_export.h"

static sqlite3_vfs gUnixShadow;

int verneuil_extra_init(const char *zArg){
  sqlite3_vfs *pV;
  const char *zShadow;
  int rc;
  (void)zArg;
  rc = verneuilTclInit();
  if( rc!=SQLITE_OK ) return rc;
  zShadow = getenv("VERNEUIL_TCL_SHADOW_UNIX");
  if( zShadow && strcmp(zShadow, "0")==0 ) return SQLITE_OK;
  if( gUnixShadow.xOpen==0 ){
    pV = sqlite3_vfs_find("verneuil");
    if( pV==0 ){
      fprintf(stderr, "verneuil-tclhook: the verneuil VFS is not registered\n");
      return SQLITE_ERROR;
    }
    memcpy(&gUnixShadow, pV, sizeof(gUnixShadow));
    gUnixShadow.pNext = 0;
    gUnixShadow.zName = "unix";
  }
  return sqlite3_vfs_register(&gUnixShadow, 1);
}

/* SQLite's I/O error simulation (SQLITE_TEST builds: the testfixture). The
** per-commit check reads the whole database through the unix VFS, whose
** reads decrement sqlite3_io_error_pending; the check suspends the
** simulation so that it does not move the point where a test's injected
** error fires. (The tracker's own reads at commit are part of the system
** under test and are left alone.) Weak, so that a link without them works. */
extern int sqlite3_io_error_pending __attribute__((weak));
extern int sqlite3_io_error_persist __attribute__((weak));

typedef struct VtIoSim { int pending, persist; } VtIoSim;
static VtIoSim gSaved;

void vt_iosim_suspend(void){
  if( &sqlite3_io_error_pending ){
    gSaved.pending = sqlite3_io_error_pending;
    sqlite3_io_error_pending = 0;
  }
  if( &sqlite3_io_error_persist ){
    gSaved.persist = sqlite3_io_error_persist;
    sqlite3_io_error_persist = 0;
  }
}

void vt_iosim_resume(void){
  if( &sqlite3_io_error_pending ) sqlite3_io_error_pending = gSaved.pending;
  if( &sqlite3_io_error_persist ) sqlite3_io_error_persist = gSaved.persist;
}
