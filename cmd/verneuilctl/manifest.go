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
		run:     runManifest,
	})
}

func runManifest(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("manifest", flag.ContinueOnError)
	hostname := fs.String("hostname", "", "host the database was replicated from")
	key := fs.String("manifest", "", "replica key instead of a database path")
	at := fs.String("at", "", "version current at this time")
	version := fs.Uint64("version", 0, "this version")
	out := fs.String("out", "", "write the encoded manifest to this file (pins the version for restore --manifest)")
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if (len(pos) == 1) == (*key != "") || len(pos) > 1 {
		return usagef("give exactly one of DB or --manifest")
	}
	s, err := a.store(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	m, err := pickManifest(ctx, a, s, pos, *hostname, *key, *at, *version)
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
		fmt.Fprintf(a.stdout, "name %s\nversion %d\ncommit_time %s\nlength %d\npage_size %d\nchunks %d\n",
			i.Name, i.Version, i.CommitTime.Format("2006-01-02T15:04:05.000000000Z"), i.Length, i.PageSize, i.Chunks)
	}
	return nil
}
