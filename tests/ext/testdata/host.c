/*
** host.c: a C program, built with gcc against the system libsqlite3
** (-lsqlite3), that hosts libverneuil.so.
**
**   host SO DB SQLFILE [CONFIG]
**
** Built two ways by tests/ext:
**   - plain:   gcc host.c -lsqlite3 -ldl. It loads the extension with
**              sqlite3_load_extension, and reaches the C API of verneuil.h
**              with dlopen(RTLD_NOLOAD) + dlsym.
**   - linked:  gcc -DVERNEUIL_LINKED -I include host.c -lverneuil -lsqlite3.
**              It calls verneuil_configure(CONFIG) before loading, then loads
**              the (already mapped) library with sqlite3_load_extension, and
**              calls the C API directly.
** Either way it writes the workload through vfs=verneuil, flushes with PRAGMA
** verneuil_flush, writes more and flushes with verneuil_flush(), and prints
** one line per step on stdout for the test to check.
*/
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#ifdef VERNEUIL_LINKED
# include "verneuil.h"
#endif

static char *readFile(const char *path){
  FILE *f = fopen(path, "rb");
  long n;
  char *buf;
  if( !f ){ perror(path); exit(2); }
  fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
  buf = malloc(n+1);
  if( fread(buf, 1, n, f)!=(size_t)n ){ perror(path); exit(2); }
  buf[n] = 0;
  fclose(f);
  return buf;
}

static int printRow(void *arg, int n, char **v, char **cols){
  (void)arg; (void)cols;
  printf("%s %s\n", (const char*)arg, n>0 && v[0] ? v[0] : "NULL");
  return 0;
}

static void exec(sqlite3 *db, const char *sql, const char *label){
  char *err = 0;
  if( sqlite3_exec(db, sql, printRow, (void*)label, &err)!=SQLITE_OK ){
    fprintf(stderr, "%s: %s\n", label, err ? err : sqlite3_errmsg(db));
    exit(5);
  }
}

typedef int (*flush_fn)(const char*, char**);
typedef char *(*name_fn)(const char*, const char*);
typedef void (*free_fn)(void*);

int main(int argc, char **argv){
  const char *so, *dbPath, *sqlFile;
  sqlite3 *boot, *db;
  char *err = 0, *uri, *name;
  int rc;
  flush_fn vflush; name_fn vname; free_fn vfree;

  if( argc<4 ){ fprintf(stderr, "usage: host SO DB SQLFILE [CONFIG]\n"); return 2; }
  so = argv[1]; dbPath = argv[2]; sqlFile = argv[3];
  printf("sqlite %s\n", sqlite3_libversion());

#ifdef VERNEUIL_LINKED
  if( argc>4 ){
    rc = verneuil_configure(argv[4], &err);
    if( rc!=SQLITE_OK ){
      fprintf(stderr, "verneuil_configure: %d %s\n", rc, err ? err : "");
      verneuil_free(err);
      return 3;
    }
    printf("configure ok\n");
  }
#endif

  /* Load once, on any connection; the VFS outlives it. */
  if( sqlite3_open(":memory:", &boot)!=SQLITE_OK ) return 2;
  sqlite3_enable_load_extension(boot, 1);
  if( sqlite3_load_extension(boot, so, 0, &err)!=SQLITE_OK ){
    fprintf(stderr, "sqlite3_load_extension: %s\n", err ? err : "?");
    sqlite3_free(err);
    return 4;
  }
  sqlite3_enable_load_extension(boot, 0);
  sqlite3_close(boot);
  printf("loaded\n");

  uri = sqlite3_mprintf("file:%s?vfs=verneuil", dbPath);
  rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READWRITE|SQLITE_OPEN_CREATE|SQLITE_OPEN_URI, 0);
  sqlite3_free(uri);
  if( rc!=SQLITE_OK ){ fprintf(stderr, "open: %s\n", sqlite3_errmsg(db)); return 5; }
  {
    char *sql = readFile(sqlFile);
    exec(db, sql, "workload");
    free(sql);
  }
  exec(db, "PRAGMA verneuil_flush", "pragma_flush");

#ifdef VERNEUIL_LINKED
  vflush = verneuil_flush; vname = verneuil_manifest_name; vfree = verneuil_free;
  rc = verneuil_configure("{}", &err);
  printf("configure_after_load %d\n", rc);
  if( rc==SQLITE_OK || !err || !strstr(err, "already loaded") ){
    fprintf(stderr, "verneuil_configure after load: %d %s\n", rc, err ? err : "(no message)");
    return 6;
  }
  verneuil_free(err); err = 0;
#else
  {
    void *h = dlopen(so, RTLD_NOW|RTLD_NOLOAD);
    if( !h ){ fprintf(stderr, "dlopen: %s\n", dlerror()); return 6; }
    vflush = (flush_fn)dlsym(h, "verneuil_flush");
    vname = (name_fn)dlsym(h, "verneuil_manifest_name");
    vfree = (free_fn)dlsym(h, "verneuil_free");
    if( !vflush || !vname || !vfree ){ fprintf(stderr, "dlsym: %s\n", dlerror()); return 6; }
  }
#endif
  name = vname(0, dbPath);
  printf("manifest_name %s\n", name ? name : "NULL");
  vfree(name);

  /* More writes after the PRAGMA flush: verneuil_flush(path) uploads them. */
  exec(db, "CREATE TABLE IF NOT EXISTS more(b); "
           "INSERT INTO more VALUES(randomblob(150000)); "
           "INSERT INTO more VALUES(randomblob(90000));", "more");
  rc = vflush(dbPath, &err);
  printf("flush_db %d %s\n", rc, err ? err : "ok");
  vfree(err); err = 0;
  rc = vflush(0, &err);
  printf("flush_all %d %s\n", rc, err ? err : "ok");
  vfree(err); err = 0;
  /* A database this process never saw: an error with a message. */
  rc = vflush("/nonexistent/never.db", &err);
  printf("flush_missing %d %s\n", rc, err && strstr(err, "never.db") ? "named" : (err ? err : "NULL"));
  vfree(err); err = 0;

  sqlite3_close(db);
  printf("done\n");
  return 0;
}
