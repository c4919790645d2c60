package tracker

import (
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
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

const chainTestCS = 1000

// whole maps chunks to their whole range.
func whole(chunks ...uint32) map[uint32][2]uint32 {
	m := map[uint32][2]uint32{}
	for _, c := range chunks {
		m[c] = [2]uint32{0, chainTestCS}
	}
	return m
}

func TestChainWalk(t *testing.T) {
	const cs = chainTestCS
	tests := []struct {
		name    string
		records func(c *chainLog)
		fromLen int64
		to      uint64
		n       int64
		want    map[uint32][2]uint32
		ok      bool
	}{
		{"written ranges", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{3, 0}, []uint32{100, 200, 24, 28}, cs)
			c.record(chainID(2), chainID(3), 5000, []uint32{3, 0}, []uint32{150, 400, 24, 28}, cs)
		}, 5000, 3, 5, map[uint32][2]uint32{0: {24, 28}, 3: {100, 400}}, true},
		{"a run with written ranges", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{1, 2, 3}, []uint32{500, 1000, 0, 1000, 0, 300}, cs)
		}, 5000, 2, 5, map[uint32][2]uint32{1: {500, 1000}, 2: {0, 1000}, 3: {0, 300}}, true},
		{"one record", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{3, 0, 1}, nil, chainTestCS)
		}, 5000, 2, 5, whole(0, 1, 3), true},
		{"two records, runs merged", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0, 1, 2}, nil, chainTestCS)
			c.record(chainID(2), chainID(3), 5000, []uint32{0, 4}, nil, chainTestCS)
		}, 5000, 3, 5, whole(0, 1, 2, 4), true},
		{"growth without writes", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 7500, []uint32{0}, nil, chainTestCS)
		}, 5000, 2, 8, whole(0, 5, 6, 7), true},
		{"shrink then growth", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 2500, []uint32{0}, nil, chainTestCS)
			c.record(chainID(2), chainID(3), 5000, []uint32{0}, nil, chainTestCS)
		}, 5000, 3, 5, whole(0, 2, 3, 4), true},
		{"chunks past the end dropped", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 9000, []uint32{0, 8}, nil, chainTestCS)
		}, 9000, 2, 3, whole(0), true},
		{"a missing link", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0}, nil, chainTestCS)
			c.record(chainID(3), chainID(4), 5000, []uint32{0}, nil, chainTestCS)
		}, 5000, 4, 5, nil, false},
		{"two records leave one state", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0}, nil, chainTestCS)
			c.record(chainID(1), chainID(5), 5000, []uint32{1}, nil, chainTestCS)
			c.record(chainID(2), chainID(3), 5000, []uint32{0}, nil, chainTestCS)
		}, 5000, 3, 5, nil, false},
		{"overwritten by newer records", func(c *chainLog) {
			c.record(chainID(1), chainID(2), 5000, []uint32{0}, nil, chainTestCS)
			for i := range uint64(chainSlots) {
				c.record(chainID(100+i), chainID(101+i), 5000, []uint32{0}, nil, chainTestCS)
			}
		}, 5000, 2, 5, nil, false},
		{"too many runs: not recorded", func(c *chainLog) {
			var many []uint32
			for i := range uint32(2*chainMaxRuns + 2) {
				many = append(many, 2*i)
			}
			c.record(chainID(1), chainID(2), 1<<20, many, nil, chainTestCS)
		}, 1 << 20, 2, 1 << 10, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := openTestChain(t)
			tt.records(c)
			got, ok := c.walk(chainID(1), chainID(tt.to), tt.fromLen, cs, tt.n)
			if ok != tt.ok || !maps.Equal(got, tt.want) {
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
	c.record(bare, chainID(2), 5000, []uint32{0}, nil, chainTestCS)
	c.record(chainID(1), bare, 5000, []uint32{0}, nil, chainTestCS)
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
	c.record(chainID(1), chainID(2), 5000, []uint32{0, 3}, nil, chainTestCS)
	other, err := openChain(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if got, ok := other.walk(chainID(1), chainID(2), 5000, 1000, 5); !ok || !maps.Equal(got, whole(0, 3)) {
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
	c.record(chainID(1), chainID(2), 5000, []uint32{0}, nil, chainTestCS)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.walk(chainID(1), chainID(2), 5000, 1000, 5); ok {
		t.Fatal("walked a truncated file")
	}
	if err := c.record(chainID(2), chainID(3), 5000, []uint32{0}, nil, chainTestCS); err == nil {
		t.Fatal("recorded into a truncated file")
	}
	again, err := openChain(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	defer again.close()
	if err := again.record(chainID(2), chainID(3), 5000, []uint32{0}, nil, chainTestCS); err != nil {
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
	c.record(chainID(1), chainID(2), 5000, []uint32{1}, nil, chainTestCS)
	if got, ok := c.walk(chainID(1), chainID(2), 5000, 1000, 5); !ok || !maps.Equal(got, whole(1)) {
		t.Fatalf("walk = %v %v", got, ok)
	}
}

func TestMergeRanges(t *testing.T) {
	foreign := map[uint32][2]uint32{0: {24, 28}, 5: {100, 200}}
	tests := []struct {
		name     string
		own      map[uint32][2]uint32
		ownDirty []uint32
		foreign  map[uint32][2]uint32
		want     map[uint32][2]uint32
	}{
		{"no foreign", map[uint32][2]uint32{1: {0, 10}}, []uint32{1}, nil, map[uint32][2]uint32{1: {0, 10}}},
		{"union", map[uint32][2]uint32{0: {0, 100}, 2: {5, 6}}, []uint32{0, 2}, foreign,
			map[uint32][2]uint32{0: {0, 100}, 2: {5, 6}, 5: {100, 200}}},
		{"own ranges unknown: own chunks whole", nil, []uint32{5, 9}, foreign, map[uint32][2]uint32{0: {24, 28}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeRanges(tt.own, tt.ownDirty, tt.foreign); !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
