package nslabtest_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/nslab/nslab/emulator/nslabtest"
)

// The examples build labs, so this package's tests run through Main (the
// echo service of a node is this test binary again).
func TestMain(m *testing.M) { nslabtest.Main(m) }

// runExample runs body, the body of a test, outside go test's runner, so
// that an Example shows a whole test and its output is checked: t stands
// in for the test's *testing.T. Its cleanups run when body returns; a
// failure prints "FAIL: ..." (and so fails the example) and ends body as
// t.FailNow ends a test.
func runExample(body func(t testing.TB)) {
	t := &exampleT{}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	defer t.finish()
	defer func() {
		if r := recover(); r != nil && r != errFailNow {
			panic(r)
		}
	}()
	body(t)
}

var errFailNow = &struct{ string }{"FailNow"}

// exampleT is the testing.TB of runExample: the methods nslabtest calls.
// Any other panics on the nil embedded TB, which fails the example.
type exampleT struct {
	testing.TB
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
	failed   bool
	dirs     []string
}

func (t *exampleT) finish() {
	t.cancel() // as go test does, before the cleanups
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}

func (t *exampleT) Helper()                         {}
func (t *exampleT) Name() string                    { return "Example" }
func (t *exampleT) Context() context.Context        { return t.ctx }
func (t *exampleT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Failed() bool                    { return t.failed }
func (t *exampleT) Fail()                           { t.failed = true }
func (t *exampleT) FailNow()                        { t.failed = true; panic(errFailNow) }
func (t *exampleT) Log(args ...any)                 { fmt.Println(args...) }
func (t *exampleT) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }
func (t *exampleT) Error(args ...any) {
	t.failed = true
	fmt.Println(append([]any{"FAIL:"}, args...)...)
}
func (t *exampleT) Errorf(format string, args ...any) {
	t.failed = true
	fmt.Printf("FAIL: "+format+"\n", args...)
}
func (t *exampleT) Fatal(args ...any)                 { t.Error(args...); t.FailNow() }
func (t *exampleT) Fatalf(format string, args ...any) { t.Errorf(format, args...); t.FailNow() }
func (t *exampleT) TempDir() string {
	d, err := os.MkdirTemp("", "nslab-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.dirs = append(t.dirs, d)
	return d
}
func (t *exampleT) ArtifactDir() string { return t.TempDir() }
