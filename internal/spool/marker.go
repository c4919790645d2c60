package spool

// RescanMarker is the name of an empty file that a process which wrote a
// database without capturing it (a child forked without exec, whose Go
// runtime is gone) creates in the database's spool directory: the
// database must be rescanned. The replicating VFS creates it from C.
const RescanMarker = "needs-rescan"
