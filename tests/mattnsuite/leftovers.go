package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

var digits = regexp.MustCompile(`[0-9]+`)

// leftovers lists what is left under dir after a pass, as paths relative
// to it with every run of digits written N (temporary names are random),
// sorted.
func leftovers(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, digits.ReplaceAllString(rel, "N"))
		return nil
	})
	slices.Sort(out)
	return out, err
}

// leftoverProblems compares what the two passes left in TMPDIR and in
// their working directories: the VFS must leave the same files on disk
// as unix.
func leftoverProblems(plain, vern *pass) []string {
	var problems []string
	for _, sub := range []string{passTmpDir, "wd"} {
		a, errA := leftovers(filepath.Join(plain.dir, sub))
		b, errB := leftovers(filepath.Join(vern.dir, sub))
		if errA != nil || errB != nil {
			problems = append(problems, fmt.Sprintf("files left in %s: %v %v", sub, errA, errB))
			continue
		}
		if !slices.Equal(a, b) {
			problems = append(problems, fmt.Sprintf("the passes left different files in %s: plain [%s], verneuil [%s]",
				sub, strings.Join(a, " "), strings.Join(b, " ")))
		}
	}
	return problems
}
