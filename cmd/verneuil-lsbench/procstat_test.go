package main

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		stat string
		want time.Duration
		ok   bool
	}{
		// utime 250 ticks, stime 50 ticks: 3 s.
		{"1234 (litestream) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 500", 3 * time.Second, true},
		// A command name with spaces and parentheses.
		{"77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 100 10", 100 * time.Millisecond, true},
		{"77 (x) R 1 2", 0, false},
		{"no name here", 0, false},
		{"77 (x) R 1 77 77 0 -1 0 0 0 0 0 seven 3 0 0", 0, false},
	}
	for _, tt := range tests {
		got, err := parseStatCPU([]byte(tt.stat))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseStatCPU(%q) = %v, %v; want %v, ok=%v", tt.stat, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseStatusMem(t *testing.T) {
	status := "Name:\tlitestream\nVmPeak:\t 1000 kB\nVmHWM:\t   53456 kB\nVmRSS:\t   51200 kB\nThreads:\t12\n"
	rss, hwm := parseStatusMem([]byte(status))
	if rss != 51200<<10 || hwm != 53456<<10 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	if rss, hwm := parseStatusMem([]byte("Name:\tzombie\nState:\tZ\n")); rss != 0 || hwm != 0 {
		t.Errorf("zombie: rss %d hwm %d", rss, hwm)
	}
}

// TestReadProcSelf reads this process, which has spent some CPU time and
// holds some memory.
func TestReadProcSelf(t *testing.T) {
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) { // burn CPU for the kernel to account
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPU <= 0 || s.RSS <= 0 || s.HWM < s.RSS {
		t.Errorf("implausible sample of this process: %+v", s)
	}
}
