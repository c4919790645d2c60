package spool

// Names of the files and directories of a spool (docs/FORMAT.md, "Spool"):
// SPOOL/DBsDirName/KEY/ holds the files below, LastErrorFile and
// RescanMarker.
//
// UploadedTargetsFile lists, one per line, the targets (opaque IDs chosen
// by the uploader) that the UploadedFile record is valid for: the chunks
// it lists are known to be in those targets only. A record without this
// file (older versions) or with other targets is not evidence of anything
// in the configured targets.
const (
	DBsDirName          = "dbs"              // under the spool root: one directory per database
	InfoFile            = "db.json"          // canonical path and replica name
	ManifestFile        = "manifest"         // newest committed manifest
	UploadedFile        = "uploaded"         // last manifest uploaded to every target
	UploadedTargetsFile = "uploaded.targets" // the targets UploadedFile is valid for
	ChunksDir           = "chunks"           // staged chunks not yet uploaded
	RescanFile          = "rescan"           // staged data was lost: rescan the database
	LockFile            = "lock"             // flock(2): publish and GC
	UploadLockFile      = "upload.lock"      // flock(2): one uploader at a time
	PinFile             = "upload.pin"       // the manifest being uploaded: GC keeps its staged chunks
	TmpDir              = "tmp"              // temp files, renamed into place
	SpareFile           = "manifest.spare"   // in TmpDir: the manifest swapped into place
	ChainFile           = "chain"            // shared mapping: recent commits of the writing processes (tracker)
)
