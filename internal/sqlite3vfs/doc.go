// Package sqlite3vfs is the only cgo package of the library: it holds the C
// shim that registers the replicating VFS "verneuil" over SQLite's unix VFS
// (shim.c), the read-only VFS "verneuil_snapshot" over replicas in the
// blob store (snapshot.c, with internal/replica behind it), and the
// //export trampolines through which the shim calls the tracker once per
// transaction and the snapshot VFS calls the replica once per chunk miss.
// C never holds Go pointers (only integer handles), and every trampoline
// recovers panics so that nothing crosses into the host's C stack.
//
// In the default build the SQLite symbols come from
// github.com/mattn/go-sqlite3, which this package imports. With the build tag
// verneuil_ext the same C source is compiled against sqlite3ext.h for the
// loadable extension, and the host process provides SQLite.
package sqlite3vfs
