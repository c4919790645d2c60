package gc

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// partitionCount is how many on-disk partitions (by the first byte of a
// chunk hash) references and listings are spilled into: a partition of a
// target with a million chunks holds about 4,000 of them.
const partitionCount = 256

// partitions is a set of append-only files of fixed-size records, one per
// first hash byte.
type partitions struct {
	mu      sync.Mutex
	dir     string
	name    string
	recSize int
	files   [partitionCount]*os.File
	bufs    [partitionCount]*bufio.Writer
}

func newPartitions(dir, name string, recSize int) (*partitions, error) {
	p := &partitions{dir: dir, name: name, recSize: recSize}
	for i := range p.files {
		f, err := os.Create(p.path(i))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("gc: spill file: %w", err)
		}
		p.files[i] = f
		p.bufs[i] = bufio.NewWriterSize(f, 4096)
	}
	return p, nil
}

func (p *partitions) path(i int) string {
	return filepath.Join(p.dir, fmt.Sprintf("%s-%02x", p.name, i))
}

// add appends records; each starts with the hash that picks its partition.
func (p *partitions) add(recs ...[]byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rec := range recs {
		if _, err := p.bufs[rec[0]].Write(rec); err != nil {
			return fmt.Errorf("gc: spill: %w", err)
		}
	}
	return nil
}

// finish flushes and closes the files; read reads them back.
func (p *partitions) finish() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.files {
		if f == nil {
			continue
		}
		if err := p.bufs[i].Flush(); err != nil {
			return fmt.Errorf("gc: spill: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("gc: spill: %w", err)
		}
		p.files[i] = nil
	}
	return nil
}

// read returns the records of partition i, and removes its file.
func (p *partitions) read(i int) ([]byte, error) {
	f, err := os.Open(p.path(i))
	if err != nil {
		return nil, fmt.Errorf("gc: spill: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("gc: spill: %w", err)
	}
	if len(data)%p.recSize != 0 {
		return nil, fmt.Errorf("gc: spill file %s: %d bytes is not a whole number of records", p.path(i), len(data))
	}
	_ = os.Remove(p.path(i))
	return data, nil
}

func (p *partitions) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.files {
		if f != nil {
			f.Close()
			p.files[i] = nil
		}
	}
}
