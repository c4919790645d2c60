package spool

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestFileNamesDocumented: the spool layout in docs/FORMAT.md lists
// exactly the file names this package uses.
func TestFileNamesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile(`(?m)^SPOOL/dbs/KEY/([a-z_.-]+)`).FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	used := []string{InfoFile, ManifestFile, UploadedFile, UploadedTargetsFile, ChunksDir, RescanFile,
		LockFile, UploadLockFile, PinFile, LastErrorFile, TmpDir, ChainFile}
	slices.Sort(documented)
	slices.Sort(used)
	if !slices.Equal(documented, used) {
		t.Errorf("docs/FORMAT.md lists %q, the spool uses %q", documented, used)
	}
	if !regexp.MustCompile(`SPOOL/`+DBsDirName+`/KEY/`).Match(doc) || !regexp.MustCompile(regexp.QuoteMeta(SpareFile)).Match(doc) {
		t.Errorf("docs/FORMAT.md does not name %s/ or %s", DBsDirName, SpareFile)
	}
}
