package main

import (
	"testing"

	"github.com/verneuil-go/verneuil/internal/testutil"
)

// TestMain removes the verneuilctl binary that the terminal tests build
// (testutil.Verneuilctl) once per test process.
func TestMain(m *testing.M) { testutil.Main(m, "", nil) }
