/*
** ext.c: the entry point of the loadable extension libverneuil.so.
**
** Compiled only in the extension build (go build -tags verneuil_ext, which
** defines VERNEUIL_EXTENSION through link_ext.go). This file is the one place
** that defines sqlite3_api (SQLITE_EXTENSION_INIT1); shim.c declares it with
** SQLITE_EXTENSION_INIT3, so that every SQLite call of the package goes
** through the host's sqlite3_api_routines and no SQLite is linked in.
**
** SQLite derives the entry point sqlite3_verneuil_init from the file name
** libverneuil.so. It:
**   1. refuses an SQLite older than VERNEUIL_MIN_SQLITE_VERSION, asking the
**      host's routines for the version *before* adopting them;
**   2. calls Go once (verneuilGoExtInit): Go loads the configuration
**      (VERNEUIL_CONFIG, or verneuil_configure()) and registers every VFS of
**      the extension: "verneuil" and the read replica "verneuil_snapshot"
**      (see cmd/verneuil-ext);
**   3. returns SQLITE_OK_LOAD_PERMANENTLY: the registered VFSes must outlive
**      the connection that loaded the library, so it is never unloaded.
** Loading again (another connection, another .load) is cheap and returns the
** same result; after a failure, a later load tries again.
*/
#ifdef VERNEUIL_EXTENSION

#include "sqlite3ext.h"
SQLITE_EXTENSION_INIT1

#include <stdlib.h>

#include "ext.h"
#include "_cgo_export.h"

int sqlite3_verneuil_init(sqlite3 *db, char **pzErrMsg,
                          const sqlite3_api_routines *pApi){
  char *zErr = 0;
  int rc;
  (void)db;
  if( pApi==0 ) return SQLITE_MISUSE;
  if( pApi->libversion_number()<VERNEUIL_MIN_SQLITE_VERSION_NUMBER ){
    if( pzErrMsg ){
      *pzErrMsg = pApi->mprintf("verneuil: SQLite %s is too old: libverneuil "
          "needs SQLite " VERNEUIL_MIN_SQLITE_VERSION " or newer",
          pApi->libversion());
    }
    return SQLITE_ERROR;
  }
  SQLITE_EXTENSION_INIT2(pApi);
  rc = verneuilGoExtInit(&zErr);
  if( rc!=SQLITE_OK ){
    if( pzErrMsg ){
      *pzErrMsg = sqlite3_mprintf("%s",
          zErr ? zErr : "verneuil: initialisation failed");
    }
    free(zErr);
    return rc;
  }
  free(zErr);
  return SQLITE_OK_LOAD_PERMANENTLY;
}

#endif /* VERNEUIL_EXTENSION */
