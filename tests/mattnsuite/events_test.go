package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEvents(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		tests   map[string]string
		pkg     string
		wantErr string
	}{
		{
			name: "pass, fail, skip and subtests",
			stream: `{"Action":"start","Package":"p"}
{"Action":"run","Test":"TestA"}
{"Action":"output","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Test":"TestA"}
{"Action":"run","Test":"TestB"}
{"Action":"run","Test":"TestB/one"}
{"Action":"fail","Test":"TestB/one"}
{"Action":"fail","Test":"TestB"}
{"Action":"run","Test":"TestC"}
{"Action":"skip","Test":"TestC"}

{"Action":"output","Output":"FAIL\n"}
{"Action":"fail","Package":"p"}
`,
			tests: map[string]string{"TestA": "pass", "TestB": "fail", "TestB/one": "fail", "TestC": "skip"},
			pkg:   "fail",
		},
		{
			name: "a crash leaves the running test incomplete and no package result",
			stream: `{"Action":"run","Test":"TestA"}
{"Action":"pass","Test":"TestA"}
{"Action":"run","Test":"TestCrash"}
{"Action":"output","Test":"TestCrash","Output":"SIGSEGV\n"}
`,
			tests: map[string]string{"TestA": "pass", "TestCrash": "incomplete"},
			pkg:   "",
		},
		{
			name:    "a line that is not JSON is an error",
			stream:  "{\"Action\":\"run\",\"Test\":\"TestA\"}\nexit status 2\n",
			wantErr: "line 2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := parseEvents(strings.NewReader(tc.stream))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Tests, tc.tests) {
				t.Errorf("tests = %v, want %v", res.Tests, tc.tests)
			}
			if res.Package != tc.pkg {
				t.Errorf("package = %q, want %q", res.Package, tc.pkg)
			}
		})
	}
}

func TestParseEventsKeepsOutput(t *testing.T) {
	res, err := parseEvents(strings.NewReader(`{"Action":"run","Test":"TestA"}
{"Action":"output","Test":"TestA","Output":"    a_test.go:9: boom\n"}
{"Action":"fail","Test":"TestA"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(res.Output["TestA"], ""); !strings.Contains(got, "boom") {
		t.Fatalf("output of TestA = %q", got)
	}
	if got := res.counts(); got != "1 tests (subtests included): 0 pass, 1 fail, 0 skip" {
		t.Fatalf("counts = %q", got)
	}
}

func TestCompareOutcomes(t *testing.T) {
	result := func(tests map[string]string) *passResult { return &passResult{Tests: tests} }
	tests := []struct {
		name           string
		plain, vern    map[string]string
		wantDifference []string
	}{
		{
			name:  "same failures are no difference",
			plain: map[string]string{"A": "pass", "B": "fail", "C": "skip"},
			vern:  map[string]string{"A": "pass", "B": "fail", "C": "skip"},
		},
		{
			name:           "a failure only through verneuil",
			plain:          map[string]string{"A": "pass", "B": "pass"},
			vern:           map[string]string{"A": "pass", "B": "fail"},
			wantDifference: []string{"B: plain pass, verneuil fail"},
		},
		{
			name:           "a failure only through unix",
			plain:          map[string]string{"A": "fail"},
			vern:           map[string]string{"A": "pass"},
			wantDifference: []string{"A: plain fail, verneuil pass"},
		},
		{
			name:  "a crash: tests missing and one incomplete",
			plain: map[string]string{"A": "pass", "B": "pass", "C": "pass"},
			vern:  map[string]string{"A": "pass", "B": "incomplete"},
			wantDifference: []string{
				"B: plain pass, verneuil incomplete",
				"C: plain pass, verneuil not run",
			},
		},
		{
			name:           "a skip is an outcome too",
			plain:          map[string]string{"A": "skip"},
			vern:           map[string]string{"A": "pass"},
			wantDifference: []string{"A: plain skip, verneuil pass"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range compareOutcomes(result(tc.plain), result(tc.vern)) {
				got = append(got, d.String())
			}
			if !reflect.DeepEqual(got, tc.wantDifference) {
				t.Fatalf("differences = %q, want %q", got, tc.wantDifference)
			}
		})
	}
}
