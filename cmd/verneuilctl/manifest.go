package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

func init() {
	register(&command{
		name:    "manifest",
		usage:   "(DB [--hostname H] | --manifest KEY) [--at TIME | --version N] [--out FILE]",
		summary: "fetch a manifest (raw bytes to --out, or a summary)",
		examples: []string{
			"verneuilctl manifest /srv/app.db",
			"verneuilctl manifest web-1:/srv/app.db --at -1h --out pinned.manifest  # pin a version for restore --manifest",
		},
		json: `{"name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db", "version": "1764057600123456789",
 "commit_time": "2026-11-25T08:00:00.123456789Z", "length": 1048576, "page_size": 4096,
 "chunk_size": 65536, "chunks": 16}`,
		run: runManifest,
	})
}

func runManifest(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("manifest", flag.ContinueOnError)
	pick := definePickFlags(fs)
	out := fs.String("out", "", "write the encoded manifest to this `FILE` (pins the version for restore --manifest)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if err := pick.check(pos); err != nil {
		return err
	}
	s, err := a.store(ctx, *pick.target)
	if err != nil {
		return err
	}
	defer s.Close()
	m, _, err := pickManifest(ctx, a, s, pos, pick)
	if err != nil {
		return err
	}
	if *out != "" {
		enc, err := m.Encode()
		if err != nil {
			return err
		}
		// Private: the manifest holds the database's first chunk.
		if err := os.WriteFile(*out, enc, 0o600); err != nil {
			return fmt.Errorf("write manifest: %w", err)
		}
	}
	if a.jsonOut {
		return a.printJSON(infoOf(m))
	}
	if *out == "" {
		i := infoOf(m)
		fmt.Fprintf(a.stdout, "name %s\nkey %s\nversion %d\ncommit_time %s\nlength %d\npage_size %d\nchunk_size %d\nchunks %d\n",
			i.Name, i.Key, i.Version, i.CommitTime.Format(timeFormat), i.Length, i.PageSize, i.ChunkSize, i.Chunks)
	}
	return nil
}
