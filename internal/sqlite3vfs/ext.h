/*
** ext.h: constants of the loadable extension libverneuil.so (ext.c).
*/
#ifndef VERNEUIL_EXT_H
#define VERNEUIL_EXT_H

/* The oldest SQLite the extension accepts: Debian 12's 3.40. The C shim
** calls no SQLite API newer than that, whatever the vendored headers say.
** sqlite3vfs.MinSQLiteVersionNumber in Go must stay equal. */
#define VERNEUIL_MIN_SQLITE_VERSION_NUMBER 3040000
#define VERNEUIL_MIN_SQLITE_VERSION        "3.40.0"

#endif
