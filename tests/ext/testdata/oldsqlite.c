/*
** oldsqlite.c: calls sqlite3_verneuil_init with a fake sqlite3_api_routines
** that reports SQLite 3.39.4, older than the minimum (3.40.0): the entry
** point must refuse with a message naming both versions, before it uses any
** other routine. Also: a NULL pApi gives SQLITE_MISUSE.
**
**   oldsqlite SO
*/
#define _GNU_SOURCE
#define SQLITE_CORE 1 /* only the struct, not the sqlite3_api macros */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3ext.h>

static int fakeVersionNumber(void){ return 3039004; }
static const char *fakeVersion(void){ return "3.39.4"; }
static char *fakeMprintf(const char *fmt, ...){
  va_list ap;
  char *s = 0;
  va_start(ap, fmt);
  if( vasprintf(&s, fmt, ap)<0 ) s = 0;
  va_end(ap);
  return s;
}

typedef int (*init_fn)(sqlite3*, char**, const sqlite3_api_routines*);

int main(int argc, char **argv){
  sqlite3_api_routines api;
  init_fn init;
  char *err = 0;
  int rc;
  void *h;
  if( argc<2 ) return 2;
  h = dlopen(argv[1], RTLD_NOW);
  if( !h ){ fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
  init = (init_fn)dlsym(h, "sqlite3_verneuil_init");
  if( !init ){ fprintf(stderr, "dlsym: %s\n", dlerror()); return 2; }

  rc = init(0, &err, 0);
  printf("null_api %d\n", rc);

  memset(&api, 0, sizeof(api)); /* any other routine would crash */
  api.libversion_number = fakeVersionNumber;
  api.libversion = fakeVersion;
  api.mprintf = fakeMprintf;
  rc = init(0, &err, &api);
  printf("old_sqlite %d %s\n", rc, err ? err : "NULL");
  free(err);
  return 0;
}
