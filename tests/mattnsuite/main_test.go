package main

import (
	"path/filepath"
	"testing"

	"github.com/verneuil-go/verneuil/internal/config"
)

// TestPassConfigEscapesPaths: a work directory with a space, a percent
// sign or a '#' (a checkout in "My Projects") still names its own spool
// and target.
func TestPassConfigEscapesPaths(t *testing.T) {
	for _, dir := range []string{"/srv/plain", "/home/a b/c%41d/#e?f"} {
		p := &pass{mode: "verneuil", dir: filepath.Join(dir, "verneuil")}
		cfg, err := config.Load(p.config())
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if got, want := cfg.Targets[0].Dir(), filepath.Join(p.dir, "store"); got != want {
			t.Errorf("target directory %q, want %q", got, want)
		}
		if got, want := cfg.SpoolDir, filepath.Join(p.dir, "spool"); got != want {
			t.Errorf("spool %q, want %q", got, want)
		}
		if !cfg.MakeDefault || cfg.Hostname != replicaHost {
			t.Errorf("make_default %v, hostname %q", cfg.MakeDefault, cfg.Hostname)
		}
	}
}
