package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/verneuil-go/verneuil/internal/blob"
	"github.com/verneuil-go/verneuil/internal/restore"
)

// A probe reads the store (directly, not through the counting proxy) and
// says which transaction of a database is the newest one restorable from
// it: the writer stores each transaction's sequence number in the
// database header's user_version (bytes 60-63 of page 1), so the probe
// needs page 1 of the newest restorable state.
type probe interface {
	// seq returns the newest restorable sequence number of database i,
	// or -1 when the store holds none of it yet.
	seq(ctx context.Context, i int) (int64, error)
}

// userVersion returns the user_version field of a database header.
func userVersion(page1 []byte) (int64, error) {
	if len(page1) < 64 || !bytes.HasPrefix(page1, []byte("SQLite format 3\x00")) {
		return 0, errors.New("not a SQLite database header")
	}
	return int64(binary.BigEndian.Uint32(page1[60:64])), nil
}

// verneuilProbe reads a database's newest manifest (the `latest` object,
// one GET): a manifest is published only after every chunk it names, so
// what it describes is restorable. Its first chunk holds page 1.
type verneuilProbe struct {
	store blob.Store
	keys  []string
}

func (p *verneuilProbe) seq(ctx context.Context, i int) (int64, error) {
	m, err := restore.Latest(ctx, p.store, p.keys[i])
	if errors.Is(err, blob.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	c0, err := restore.Chunk(ctx, p.store, m, 0)
	if err != nil {
		return 0, err
	}
	return userVersion(c0)
}

// litestreamProbe reads a database's newest level-0 LTX file (S3 key
// PATH/0000/MINTXID-MAXTXID.ltx): Litestream
// uploads one per sync, after which a restore (which takes every level,
// 0 included) reaches it. LTX files hold pages sorted by number, so page 1,
// written by every transaction of the load, comes first; a range GET of the
// file's head is enough. New files are found by listing after the last one
// seen.
type litestreamProbe struct {
	client   *s3.Client
	bucket   string
	prefixes []string // replica path of each database

	mu   sync.Mutex
	last []string // newest L0 key seen per database
	seqs []int64
}

func newLitestreamProbe(client *s3.Client, bucket string, prefixes []string) *litestreamProbe {
	p := &litestreamProbe{client: client, bucket: bucket, prefixes: prefixes,
		last: make([]string, len(prefixes)), seqs: make([]int64, len(prefixes))}
	for i := range p.seqs {
		p.seqs[i] = -1
	}
	return p
}

func (p *litestreamProbe) seq(ctx context.Context, i int) (int64, error) {
	p.mu.Lock()
	after, cur := p.last[i], p.seqs[i]
	p.mu.Unlock()
	in := &s3.ListObjectsV2Input{Bucket: aws.String(p.bucket), Prefix: aws.String(p.prefixes[i] + "/0000/")}
	if after != "" {
		in.StartAfter = aws.String(after)
	}
	var keys []string
	for pg := s3.NewListObjectsV2Paginator(p.client, in); pg.HasMorePages(); {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", p.prefixes[i], err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) == 0 {
		return cur, nil
	}
	// Newest first: the newest file that wrote page 1 says the sequence.
	for j := len(keys) - 1; j >= 0; j-- {
		head, err := p.head(ctx, keys[j])
		if err != nil {
			return 0, err
		}
		v, ok, err := ltxUserVersion(head)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", keys[j], err)
		}
		if ok {
			cur = max(cur, v)
			break
		}
	}
	p.mu.Lock()
	p.last[i], p.seqs[i] = keys[len(keys)-1], cur
	p.mu.Unlock()
	return cur, nil
}

// ltxHead is how much of an LTX file is read: the header and page 1 (at
// most a 64 KiB page, compressed).
const ltxHead = ltx.HeaderSize + ltx.PageHeaderSize + 4 + 66<<10

func (p *litestreamProbe) head(ctx context.Context, key string) ([]byte, error) {
	out, err := p.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=0-%d", ltxHead-1))})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// ltxUserVersion decodes the head of an LTX file and returns the
// user_version of its page 1; ok is false when the file's first page is
// not page 1 (the transactions it holds did not write it).
func ltxUserVersion(head []byte) (v int64, ok bool, err error) {
	dec := ltx.NewDecoder(bytes.NewReader(head))
	if err := dec.DecodeHeader(); err != nil {
		return 0, false, err
	}
	var hdr ltx.PageHeader
	data := make([]byte, dec.Header().PageSize)
	if err := dec.DecodePage(&hdr, data); err == io.EOF {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	if hdr.Pgno != 1 {
		return 0, false, nil
	}
	v, err = userVersion(data)
	return v, err == nil, err
}

// observation is a probe's answer: at time at, database db's newest
// restorable transaction was seq.
type observation struct {
	db  int
	seq int64
	at  time.Time
}

// poller asks a probe about some databases, over and over, and keeps
// every increase it sees.
type poller struct {
	probe    probe
	dbs      []int // which databases (a sample of a large set)
	interval time.Duration

	mu   sync.Mutex
	seen map[int]int64 // newest sequence seen per database
	obs  []observation
	errs int
	err  error
}

func newPoller(p probe, dbs []int, interval time.Duration) *poller {
	pl := &poller{probe: p, dbs: dbs, interval: interval, seen: map[int]int64{}}
	for _, d := range dbs {
		pl.seen[d] = -1
	}
	return pl
}

// run polls until ctx ends.
func (pl *poller) run(ctx context.Context) {
	t := time.NewTicker(pl.interval)
	defer t.Stop()
	for {
		pl.pollOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (pl *poller) pollOnce(ctx context.Context) {
	for _, d := range pl.dbs {
		s, err := pl.probe.seq(ctx, d)
		now := time.Now()
		pl.mu.Lock()
		if err != nil {
			if ctx.Err() == nil {
				pl.errs++
				pl.err = err
			}
		} else if s > pl.seen[d] {
			pl.seen[d] = s
			pl.obs = append(pl.obs, observation{d, s, now})
		}
		pl.mu.Unlock()
	}
}

// errors returns how many polls failed and the last failure.
func (pl *poller) errors() (int, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.errs, pl.err
}

// reached reports whether every polled database has reached want[db]
// (databases absent from want must merely exist in the store).
func (pl *poller) reached(want map[int]int64) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, d := range pl.dbs {
		if pl.seen[d] < max(want[d], 0) {
			return false
		}
	}
	return true
}

// lags attributes each commit of a polled database to the first
// observation that covers it and returns commit → observed; commits never
// observed are counted apart.
func (pl *poller) lags(recs []commitRecord) (lags []time.Duration, unseen int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	byDB := map[int][]observation{}
	for _, o := range pl.obs {
		byDB[o.db] = append(byDB[o.db], o)
	}
	for _, r := range recs {
		if _, polled := pl.seen[r.DB]; !polled {
			continue
		}
		i, _ := slices.BinarySearchFunc(byDB[r.DB], r.Seq, func(o observation, seq int64) int { return cmp.Compare(o.seq, seq) })
		if i == len(byDB[r.DB]) {
			unseen++
			continue
		}
		lags = append(lags, byDB[r.DB][i].at.Sub(time.Unix(0, r.Commit)))
	}
	return lags, unseen
}
