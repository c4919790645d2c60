package config

import (
	"strings"
	"testing"
)

// TestRegression_DuplicateReplicaNames: two databases mapped to one replica
// name would share one spool and one key, and the replica would alternate
// between them: a configuration error naming both paths.
func TestRegression_DuplicateReplicaNames(t *testing.T) {
	_, err := Parse([]byte(`{"names": {"/data/b.db": "shared", "/data/a.db": "shared", "/data/c.db": "c"}}`))
	if err == nil {
		t.Fatal("Parse accepted two databases with the replica name \"shared\"")
	}
	want := `config: names: "/data/a.db" and "/data/b.db" are both mapped to replica name "shared"`
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error = %q, want it to start with %q", err, want)
	}
	if _, err := Parse([]byte(`{"names": {"/data/a.db": "a", "/data/b.db": "b"}}`)); err != nil {
		t.Fatalf("distinct names: %v", err)
	}
}
