package spool

// RescanMarker names an empty file in a database's spool directory that a
// process writing the database without capturing it (a child forked
// without exec, whose Go runtime is gone) creates from C: the database
// changed outside capture and must be rescanned (verneuilctl sync, or the
// copier daemon, does it).
const RescanMarker = "needs-rescan"
