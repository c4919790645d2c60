package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/verneuil-go/verneuil/internal/config"
	"github.com/verneuil-go/verneuil/internal/replicator"
)

// Tools compared.
const (
	toolLitestream = "litestream"
	toolVerneuil   = "verneuil"
	// toolVerneuilWAL is verneuil with the databases in WAL mode, as
	// Litestream's are (its VFS captures commits at the release of the
	// WAL write lock).
	toolVerneuilWAL = "verneuil-wal"
)

// writerSpec tells a writer child what to do; the parent passes it as JSON
// in VERNEUIL_LSBENCH_SPEC.
type writerSpec struct {
	Tool      string        `json:"tool"`
	DBs       []string      `json:"dbs"`
	Rate      float64       `json:"rate"`     // transactions per second per database; 0: as fast as possible
	Duration  time.Duration `json:"duration"` // of the load (paced loads)
	RowsPerTx int           `json:"rows_per_tx"`
	RowBytes  int           `json:"row_bytes"`
	Txs       int64         `json:"txs"`     // unpaced loads: transactions per database
	Idle      bool          `json:"idle"`    // no load: wait Duration
	Records   string        `json:"records"` // where the commit records go
	Config    string        `json:"config"`  // verneuil: the replicator's configuration (JSON)
}

// commitRecord is one committed transaction: database index, its sequence
// number (stored in the database's user_version by the same transaction),
// and when the transaction began and when COMMIT returned.
type commitRecord struct {
	DB     int   `json:"d"`
	Seq    int64 `json:"k"`
	Begin  int64 `json:"b"` // Unix nanoseconds
	Commit int64 `json:"c"`
}

// dsn opens path as the tool needs it: Litestream replicates a database in
// WAL mode through SQLite's unix VFS; verneuil replicates rollback-journal
// databases through its VFS. Both with synchronous=OFF, so that the machine
// measures replication rather than fsync, and a busy timeout (Litestream
// checkpoints from its own connection).
func dsn(tool, path string) string {
	switch tool {
	case toolLitestream:
		return "file:" + path + "?_journal_mode=WAL&_sync=OFF&_busy_timeout=10000"
	case toolVerneuilWAL:
		return "file:" + path + "?vfs=verneuil&_journal_mode=WAL&_sync=OFF&_busy_timeout=10000"
	}
	return "file:" + path + "?vfs=verneuil&_journal_mode=TRUNCATE&_sync=OFF&_busy_timeout=10000"
}

// isVerneuil reports whether tool is verneuil, in either journal mode.
func isVerneuil(tool string) bool { return tool == toolVerneuil || tool == toolVerneuilWAL }

// runWriter is the writer child: it creates the databases, says READY,
// waits for GO on stdin, runs the load, writes the commit records, says
// DONE, and waits for EXIT (or the end of stdin) before it closes its
// connections (and drains the verneuil replicator).
func runWriter() error {
	var spec writerSpec
	if err := json.Unmarshal([]byte(os.Getenv("VERNEUIL_LSBENCH_SPEC")), &spec); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	ctx := context.Background()
	var r *replicator.Replicator
	if isVerneuil(spec.Tool) {
		cfg, err := config.Load(spec.Config)
		if err != nil {
			return err
		}
		if r, err = replicator.Start(ctx, cfg); err != nil {
			return err
		}
		defer r.Close(context.Background())
	}
	dbs := make([]*sql.DB, len(spec.DBs))
	for i, p := range spec.DBs {
		db, err := sql.Open("sqlite3", dsn(spec.Tool, p))
		if err != nil {
			return err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		if _, err := db.Exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB)"); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		dbs[i] = db
	}
	if r != nil {
		if err := r.Flush(ctx); err != nil {
			return fmt.Errorf("initial flush: %w", err)
		}
	}
	stdin := bufio.NewScanner(os.Stdin)
	fmt.Println("READY")
	if !stdin.Scan() || strings.TrimSpace(stdin.Text()) != "GO" {
		return fmt.Errorf("no GO from the parent")
	}
	recs, err := load(spec, dbs)
	if err != nil {
		return err
	}
	data, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	if err := os.WriteFile(spec.Records, data, 0o600); err != nil {
		return err
	}
	fmt.Println("DONE")
	for stdin.Scan() && strings.TrimSpace(stdin.Text()) != "EXIT" {
	}
	return nil
}

// load runs one goroutine per database: paced at spec.Rate, the databases'
// first transactions spread evenly over one period, or spec.Txs
// transactions as fast as possible.
func load(spec writerSpec, dbs []*sql.DB) ([]commitRecord, error) {
	if spec.Idle {
		time.Sleep(spec.Duration)
		return nil, nil
	}
	per := make([][]commitRecord, len(dbs))
	errs := make([]error, len(dbs))
	start := time.Now()
	end := start.Add(spec.Duration)
	payload := make([]byte, spec.RowBytes)
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var period time.Duration
			next := start
			if spec.Rate > 0 {
				period = time.Duration(float64(time.Second) / spec.Rate)
				next = start.Add(time.Duration(int64(period) * int64(i) / int64(len(dbs))))
			}
			row := make([]byte, len(payload))
			for k := int64(1); ; k++ {
				if period > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					if time.Now().After(end) {
						return
					}
					next = next.Add(period)
				}
				b := time.Now()
				if err := commitOne(db, k, spec.RowsPerTx, row); err != nil {
					errs[i] = fmt.Errorf("%s: %w", spec.DBs[i], err)
					return
				}
				c := time.Now()
				per[i] = append(per[i], commitRecord{DB: i, Seq: k, Begin: b.UnixNano(), Commit: c.UnixNano()})
				if period == 0 && k >= spec.Txs {
					return
				}
			}
		}()
	}
	wg.Wait()
	var all []commitRecord
	for i := range dbs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		all = append(all, per[i]...)
	}
	return all, nil
}

// commitOne inserts rows rows of fresh random bytes and sets user_version
// to k, in one transaction: the store's copy of the database header then
// says which transactions it holds.
func commitOne(db *sql.DB, k int64, rows int, row []byte) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for range rows {
		rand.Read(row)
		if _, err := tx.Exec("INSERT INTO t(k, v) VALUES(?, ?)", k, row); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", k)); err != nil {
		return err
	}
	return tx.Commit()
}
