package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/verneuil-go/verneuil/internal/restore"
)

func init() {
	register(&command{
		name:    "list",
		usage:   "[--versions DB [--hostname H]]",
		summary: "list the databases in the target (by name, with their latest version, commit time and size), or the versions of one",
		examples: []string{
			"verneuilctl list",
			"verneuilctl list --versions web-1:/srv/app.db",
			"verneuilctl list --versions /srv/app.db --json | jq -r '.[-1].version'",
		},
		json: `list: [{"name": "web-1:/srv/app.db", "key": "1a2b-web-1%3A%2Fsrv%2Fapp.db", "version": "1764057600123456789",
  "commit_time": "2026-11-25T08:00:00.123456789Z", "length": 1048576, "page_size": 4096,
  "chunk_size": 65536, "chunks": 16}, ...]
list --versions: the same objects, one per version, oldest first`,
		run: runList,
	})
}

func runList(ctx context.Context, a *app, args []string) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	versionsOf := fs.String("versions", "", "list the versions of this database (`DB`: a path, a name as list prints it, or a replica key)")
	hostname := fs.String("hostname", "", "with --versions and a path: the `HOST` the database was replicated from")
	target := targetFlag(fs)
	pos, err := a.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *hostname != "" && *versionsOf == "" {
		return usagef("--hostname applies to --versions")
	}
	s, err := a.store(ctx, *target)
	if err != nil {
		return err
	}
	defer s.Close()
	infos := []manifestInfo{}
	if *versionsOf != "" {
		ref, err := a.resolveDB(ctx, s, *versionsOf, *hostname)
		if err != nil {
			return err
		}
		// The history and latest, which may be a version with no
		// history object yet (latest only: docs/FORMAT.md).
		seqs, latest, err := restore.History(ctx, s, ref.Key)
		if err != nil {
			return storeError(err, ref)
		}
		kept, err := a.retained(ctx, s, ref.Key)
		if err != nil {
			return err
		}
		if latest != nil && kept[latest.Seq] == "" {
			kept[latest.Seq] = "latest only"
		}
		bases := map[uint64]uint64{} // base seq -> a kept delta on it
		for i := len(seqs) - 1; i >= 0; i-- {
			seq := seqs[i]
			m, d, err := restore.VersionDelta(ctx, s, ref.Key, seq)
			if err != nil {
				return storeError(err, ref)
			}
			info := infoOf(m)
			info.Retained = kept[seq]
			if dep, ok := bases[seq]; ok && info.Retained == "" {
				info.Retained = fmt.Sprintf("base of %d", dep)
			}
			if d != nil && info.Retained != "" {
				if _, ok := bases[d.BaseSeq]; !ok {
					bases[d.BaseSeq] = seq
				}
			}
			if info.Retained == "" {
				info.Retained = "expired"
			}
			infos = append(infos, info)
		}
		slices.Reverse(infos)
	} else {
		keys, err := s.List(ctx, "dbs/")
		if err != nil {
			return storeError(err, dbRef{})
		}
		for _, k := range keys {
			if !strings.HasSuffix(k, "/latest") {
				continue
			}
			key := strings.TrimSuffix(strings.TrimPrefix(k, "dbs/"), "/latest")
			m, err := restore.Latest(ctx, s, key)
			if err != nil {
				a.log.Warn("unreadable replica", "key", key, "err", err)
				continue
			}
			infos = append(infos, infoOf(m))
		}
		slices.SortFunc(infos, func(x, y manifestInfo) int { return strings.Compare(x.Name, y.Name) })
	}
	if a.jsonOut {
		return a.printJSON(infos)
	}
	for _, i := range infos {
		name := ""
		if *versionsOf == "" {
			name = i.Name + "\t"
		}
		retained := ""
		if i.Retained != "" {
			retained = "\t" + i.Retained
		}
		fmt.Fprintf(a.stdout, "%sversion %d\t%s\t%s%s\n", name, i.Version, i.CommitTime.Format(timeFormat), humanBytes(i.Length), retained)
	}
	return nil
}
