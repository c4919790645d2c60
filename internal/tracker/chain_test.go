package tracker

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/verneuil-go/verneuil/internal/spool"
)

// chainID is a version identity with a version xattr numbered n.
func chainID(n uint64) []byte {
	x := make([]byte, xattrLen)
	binary.BigEndian.PutUint64(x, n)
	binary.BigEndian.PutUint64(x[8:], 0xfeed)
	return identity(7, x, make([]byte, HeaderLen))
}

func openTestChain(t *testing.T) (*chainLog, string) {
	t.Helper()
	dir := t.TempDir()
	c, err := openChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c, filepath.Join(dir, spool.ChainFile)
}

func TestChainWalk(t *testing.T) {
	const cs = 1000
	tests := []struct {
		name    string
		records func(c *chainLog)
		fromLen int64
		to      uint64
		n       int64
		want    []uint32
		ok      bool
	}{
		{"one record", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{3, 0, 1})
		}, 5000, 2, 5, []uint32{0, 1, 3}, true},
		{"two records, runs merged", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0, 1, 2})
			c.record(chainID(2), chainID(3), 5000, []uint32{0, 4})
		}, 5000, 3, 5, []uint32{0, 1, 2, 4}, true},
		{"growth without writes", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 7500, []uint32{0})
		}, 5000, 2, 8, []uint32{0, 5, 6, 7}, true},
		{"shrink then growth", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 2500, []uint32{0})
			c.record(chainID(2), chainID(3), 5000, []uint32{0})
		}, 5000, 3, 5, []uint32{0, 2, 3, 4}, true},
		{"chunks past the end dropped", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 9000, []uint32{0, 8})
		}, 9000, 2, 3, []uint32{0}, true},
		{"a missing link", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0})
			c.record(chainID(3), chainID(4), 5000, []uint32{0})
		}, 5000, 4, 5, nil, false},
		{"two records leave one state", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0})
			c.record(chainID(1), chainID(5), 5000, []uint32{1})
			c.record(chainID(2), chainID(3), 5000, []uint32{0})
		}, 5000, 3, 5, nil, false},
		{"overwritten by newer records", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0})
			for i := range uint64(chainSlots) {
				c.record(chainID(100+i), chainID(101+i), 5000, []uint32{0})
			}
		}, 5000, 2, 5, nil, false},
		{"too many runs: not recorded", func(c *chainLog) {
			var many []uint32
			for i := range uint32(2*chainMaxRuns + 2) {
				many = append(many, 2*i)
			}
			c.record(chainID(1), chainID(2), 1<<20, many)
		}, 1 << 20, 2, 1 << 10, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := openTestChain(t)
			tt.records(c)
			got, ok := c.walk(chainID(1), chainID(tt.to), tt.fromLen, cs, tt.n)
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Fatalf("walk = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// States without a version xattr are identified by their header alone,
// which is not unique: never recorded, never walked.
func TestChainNeedsVersionXattrs(t *testing.T) {
	c, _ := openTestChain(t)
	bare := identity(7, nil, make([]byte, HeaderLen))
	c.record(bare, chainID(2), 5000, []uint32{0})
	c.record(chainID(1), bare, 5000, []uint32{0})
	if _, ok := c.walk(bare, chainID(2), 5000, 1000, 5); ok {
		t.Fatal("walked from a state without a version xattr")
	}
	if _, ok := c.walk(chainID(1), bare, 5000, 1000, 5); ok {
		t.Fatal("walked to a state without a version xattr")
	}
}

// A record torn by a writer killed mid-write (or any damaged byte) fails
// its checksum; another process's mapping sees the damage at once.
func TestChainTornRecord(t *testing.T) {
	c, path := openTestChain(t)
	c.record(chainID(1), chainID(2), 5000, []uint32{0, 3})
	other, err := openChain(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if got, ok := other.walk(chainID(1), chainID(2), 5000, 1000, 5); !ok || !slices.Equal(got, []uint32{0, 3}) {
		t.Fatalf("the other mapping walks %v %v", got, ok)
	}
	for _, off := range []int{4, 30, 44, chainRunsOff + 4, chainRecordLen - 1} {
		b := &c.mem[chainHeaderLen+off]
		*b ^= 0x40
		if got, ok := other.walk(chainID(1), chainID(2), 5000, 1000, 5); ok {
			t.Fatalf("byte %d damaged: walked %v", off, got)
		}
		*b ^= 0x40
	}
}

// A chain file truncated under the mappings (an operator) fails walks and
// records instead of crashing the process; a new mapping resizes it.
func TestChainFileTruncated(t *testing.T) {
	c, path := openTestChain(t)
	c.record(chainID(1), chainID(2), 5000, []uint32{0})
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.walk(chainID(1), chainID(2), 5000, 1000, 5); ok {
		t.Fatal("walked a truncated file")
	}
	if err := c.record(chainID(2), chainID(3), 5000, []uint32{0}); err == nil {
		t.Fatal("recorded into a truncated file")
	}
	again, err := openChain(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if err := again.record(chainID(2), chainID(3), 5000, []uint32{0}); err != nil {
		t.Fatal(err)
	}
	if _, ok := again.walk(chainID(2), chainID(3), 5000, 1000, 5); !ok {
		t.Fatal("no walk after the file was resized")
	}
}

// A file of another size or garbage: mapped after resizing, its garbage
// never walked.
func TestChainGarbageFile(t *testing.T) {
	dir := t.TempDir()
	junk := make([]byte, 3*chainFileLen)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(filepath.Join(dir, spool.ChainFile), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openChain(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, ok := c.walk(chainID(1), chainID(2), 5000, 1000, 5); ok {
		t.Fatal("walked garbage")
	}
	c.record(chainID(1), chainID(2), 5000, []uint32{1})
	if got, ok := c.walk(chainID(1), chainID(2), 5000, 1000, 5); !ok || !slices.Equal(got, []uint32{1}) {
		t.Fatalf("walk = %v %v", got, ok)
	}
}
