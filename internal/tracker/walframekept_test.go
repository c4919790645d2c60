package tracker

import (
	"bytes"
	"testing"
)

// TestWALFrameIsKept: the remembered last frame compared with the bytes
// the last extend validated gives the same answers as the checksum check:
// whole when the -wal still holds it, not whole when the -wal was cut
// inside it and written past (a hole) or ends in it, and whole when only
// the kept copy differs (the checksum decides then).
func TestWALFrameIsKept(t *testing.T) {
	w := newTestWAL(1024, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	w.commit(3, map[uint32]byte{1: 10, 2: 20, 3: 30})
	w.commit(3, map[uint32]byte{2: 40, 3: 50})
	now, ok := parseWALIndexHeader(w.indexHeader())
	if !ok {
		t.Fatal("index header does not parse")
	}
	start, err := walGenerationStart(bytes.NewReader(w.wal), now)
	if err != nil {
		t.Fatal(err)
	}
	st := &walState{pos: start, frames: map[uint32]uint32{}}
	if _, err := st.extend(bytes.NewReader(w.wal), now); err != nil {
		t.Fatal(err)
	}
	kept := st.read.frame(st.pos.mx)
	if kept == nil || !st.pos.prevOK {
		t.Fatalf("extend kept no last frame (prevOK %v)", st.pos.prevOK)
	}
	frameLen := walFrameHdrLen + w.pageSize
	last := int(frameOffset(st.pos.mx, w.pageSize))
	holed := bytes.Clone(w.wal)
	clear(holed[last+walFrameHdrLen+w.pageSize/2 : last+frameLen])
	otherKept := bytes.Clone(kept)
	otherKept[walFrameHdrLen] ^= 0xff
	for _, tc := range []struct {
		name string
		wal  []byte
		kept []byte
		want bool
	}{
		{"unchanged, kept", w.wal, kept, true},
		{"unchanged, not kept", w.wal, nil, true},
		{"unchanged, kept copy differs", w.wal, otherKept, true},
		{"hole in the page, kept", holed, kept, false},
		{"hole in the page, not kept", holed, nil, false},
		{"ends inside the frame", w.wal[:last+frameLen-1], kept, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := walFrameIsKept(bytes.NewReader(tc.wal), st.pos, tc.kept)
			if err != nil || got != tc.want {
				t.Fatalf("walFrameIsKept = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
