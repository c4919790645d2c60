package verneuil

import (
	"slices"
	"time"

	"github.com/verneuil-go/verneuil/internal/copier"
)

// Stats are the process's replication counters since Start: the numbers
// verneuilctl's Prometheus endpoint exports as verneuil_copier_* (see
// docs/OPERATIONS.md).
type Stats struct {
	// Requests counts blob-store requests, retries included; Retries the
	// requests that were retried after a transient error; RequestErrors
	// the requests that failed.
	Requests, Retries, RequestErrors int64
	// Uploads counts upload attempts of a database (one manifest and the
	// chunks it needs); Errors the attempts that failed.
	Uploads, Errors int64
	// ChunksUploaded and BytesUploaded count chunk objects written (to
	// every target); Manifests the manifests published; ManifestBytes
	// their encoded size. PacksUploaded counts the pack objects that
	// carried some of those chunks (docs/FORMAT.md, "Packs").
	ChunksUploaded, BytesUploaded int64
	PacksUploaded                 int64
	Manifests, ManifestBytes      int64
	// Scans counts background spool scans; ScanErrors the scans that
	// could not list the spool.
	Scans, ScanErrors int64
	// SpoolsScanned counts the spools the scans examined; DirtyScanned
	// those of them examined because they were marked dirty (a version
	// published and not yet uploaded). While every database is idle, scans
	// examine none.
	SpoolsScanned, DirtyScanned int64
	// Resequenced counts manifests renumbered after the store's latest
	// (clock skew, docs/FORMAT.md); Superseded the staged manifests not
	// published because the store holds a newer state of the database.
	Resequenced, Superseded int64
	// Repacks counts uploads that moved the records the latest version
	// still references out of mostly dead packs into new ones
	// (docs/FORMAT.md, "Repacking"); RepackedPacks the packs they left,
	// RepackedBytes the bytes re-sent, RepackErrors the repacks given up
	// (the version kept its old locations).
	Repacks, RepackedPacks, RepackedBytes, RepackErrors int64
	// Panics counts panics recovered in the background uploads (each
	// failed the upload it happened in, which is retried).
	Panics int64
	// LagN counts published manifests; LagSum and LagMax are the sum and
	// the maximum of their replication lag (commit to visible in every
	// target), in seconds.
	LagN           int64
	LagSum, LagMax float64
	// Databases is the number of databases known (spools seen);
	// PendingDatabases those with a committed version not uploaded yet;
	// FailingDatabases those whose last upload failed; SpoolBytes the
	// bytes in their spools.
	Databases, PendingDatabases, FailingDatabases int
	SpoolBytes                                    int64
	// Paused reports that uploads are paused because the blob store keeps
	// failing (ConsecutiveFailures database uploads in a row); one probe
	// upload runs at a time until one succeeds.
	Paused              bool
	ConsecutiveFailures int
	// NoConditionalWrites lists the targets found to ignore conditional
	// writes (docs/OPERATIONS.md).
	NoConditionalWrites []string
}

// DBStats are one database's replication counters and state.
type DBStats struct {
	Key  string // replica key in the store
	Path string // database path, when known

	// Pending reports a committed version not uploaded yet; LagSeconds is
	// then the age of the oldest commit waiting.
	Pending    bool
	LagSeconds float64
	SpoolBytes int64

	Requests, Retries, Uploads, Errors int64
	Manifests, Chunks, ChunkBytes      int64

	// The last published version: its number, the commit time of its
	// source, when it became visible in every target, and its lag.
	LastVersion    uint64
	LastCommitTime time.Time
	LastVisible    time.Time
	LastLagSeconds float64

	// ConsecutiveFailures, LastError and LastErrorTime describe the
	// current run of failed uploads (zero after a success); NextAttempt is
	// when the next background attempt is due.
	ConsecutiveFailures int
	LastError           string
	LastErrorTime       time.Time
	NextAttempt         time.Time
}

// Stats returns the process's replication counters.
func (r *Replicator) Stats() Stats { return statsOf(r.r.Stats()) }

// DBStats returns the counters and state of the databases that committed,
// uploaded or had pending work in the last 10 minutes (idle ones are
// forgotten, and their counters restart when they come back).
func (r *Replicator) DBStats() []DBStats {
	var out []DBStats
	for _, d := range r.r.DBStats() {
		out = append(out, dbStatsOf(d))
	}
	return out
}

func statsOf(s copier.Snapshot) Stats {
	return Stats{
		Requests: s.Requests, Retries: s.Retries, RequestErrors: s.RequestErrors,
		Uploads: s.Uploads, Errors: s.Errors,
		ChunksUploaded: s.ChunksUploaded, BytesUploaded: s.BytesUploaded, PacksUploaded: s.PacksUploaded,
		Manifests: s.Manifests, ManifestBytes: s.ManifestBytes,
		Scans: s.Scans, ScanErrors: s.ScanErrors,
		SpoolsScanned: s.SpoolsScanned, DirtyScanned: s.DirtyScanned,
		Resequenced: s.Resequenced, Superseded: s.Superseded, Panics: s.Panics,
		Repacks: s.Repacks, RepackedPacks: s.RepackedPacks, RepackedBytes: s.RepackedBytes, RepackErrors: s.RepackErrors,
		LagN: s.Lag.N, LagSum: s.Lag.Sum, LagMax: s.Lag.Max,
		Databases: s.Databases, PendingDatabases: s.PendingDatabases, FailingDatabases: s.FailingDatabases,
		SpoolBytes:          s.SpoolBytes,
		Paused:              s.Paused,
		ConsecutiveFailures: s.ConsecutiveFailures,
		NoConditionalWrites: slices.Clone(s.NoConditionalWrites),
	}
}

func dbStatsOf(d copier.DBSnapshot) DBStats {
	return DBStats{
		Key: d.Key, Path: d.Path,
		Pending: d.Pending, LagSeconds: d.LagSeconds, SpoolBytes: d.SpoolBytes,
		Requests: d.Requests, Retries: d.Retries, Uploads: d.Uploads, Errors: d.Errors,
		Manifests: d.Manifests, Chunks: d.Chunks, ChunkBytes: d.ChunkBytes,
		LastVersion: d.LastVersion, LastCommitTime: d.LastCommitTime,
		LastVisible: d.LastVisible, LastLagSeconds: d.LastLagSeconds,
		ConsecutiveFailures: d.ConsecutiveFailures, LastError: d.LastError,
		LastErrorTime: d.LastErrorTime, NextAttempt: d.NextAttempt,
	}
}
