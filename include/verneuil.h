/*
** verneuil.h: the C API of libverneuil.so, the verneuil SQLite extension.
**
** libverneuil.so registers the replicating VFS "verneuil" with the host's
** SQLite when it is loaded (sqlite3_load_extension, or ".load" in the
** sqlite3 shell); see docs/EXTENSION.md. The functions below are optional
** extras for C programs:
**
**   - dlopen()/dlsym() them from the loaded library, or
**   - link the library (cc prog.c -L DIR -lverneuil -lsqlite3
**     -Wl,-rpath,DIR) and still load it into SQLite with
**     sqlite3_load_extension(db, "DIR/libverneuil.so", 0, &err): the
**     dynamic loader maps it once, and the load registers the VFS.
**
** Results are SQLite result codes (SQLITE_OK = 0, SQLITE_ERROR = 1,
** SQLITE_MISUSE = 21, SQLITE_INTERNAL = 2). When errmsg is not NULL, *errmsg
** is set to NULL on success and to a message otherwise; strings returned by
** this API are freed with verneuil_free (never sqlite3_free). Every function
** is thread-safe; none of them lets a Go panic or a crash into the host.
**
** Do not call them from a child process forked (without exec) after the
** library was loaded: the Go runtime inside does not survive fork().
*/
#ifndef VERNEUIL_H
#define VERNEUIL_H

#ifdef __cplusplus
extern "C" {
#endif

struct sqlite3;
struct sqlite3_api_routines;

/* The oldest SQLite the extension accepts (sqlite3_libversion_number()). */
#define VERNEUIL_MIN_SQLITE_VERSION_NUMBER 3040000

/* The extension's entry point, found by SQLite from the file name. Loading
** returns SQLITE_OK_LOAD_PERMANENTLY; do not register it with
** sqlite3_auto_extension (which treats that code as a failure). */
int sqlite3_verneuil_init(struct sqlite3 *db, char **pzErrMsg,
                          const struct sqlite3_api_routines *pApi);

/* Sets the configuration used when the extension is first loaded, instead
** of the VERNEUIL_CONFIG environment variable: inline JSON ("{...}"),
** "@/path/to/config.json", or a file path; "" is the embedded default; NULL
** forgets an earlier call. The configuration is parsed and validated now:
** SQLITE_ERROR with a message naming the problem. After the extension has
** been loaded successfully: SQLITE_MISUSE (the configuration cannot change
** while connections use the VFS). */
int verneuil_configure(const char *json_or_at_file, char **errmsg);

/* Uploads what was committed to the database at db_path (or, with NULL,
** everything in the spool directory, including spools left by exited
** processes) and returns when it is in every target: SQLITE_OK, or
** SQLITE_ERROR with the reason. SQLITE_MISUSE before the extension is
** loaded. Like PRAGMA verneuil_flush, but usable without a connection. */
int verneuil_flush(const char *db_path, char **errmsg);

/* Returns the key under which the replica of the database at db_path is
** stored in the targets (objects dbs/KEY/latest and dbs/KEY/manifests/...),
** as printed by "verneuilctl manifest-name" and returned by PRAGMA
** verneuil_manifest_name. hostname NULL or "" means this host (and the
** "names" overrides of the configuration apply). Returns NULL on error (no
** path, or an unusable configuration). Free the result with verneuil_free.
** Works before the extension is loaded (with the configuration a load
** would use). */
char *verneuil_manifest_name(const char *hostname, const char *db_path);

/* Frees a string returned by this API (it is malloc'd). NULL is fine. */
void verneuil_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* VERNEUIL_H */
