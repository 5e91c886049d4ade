package tests

import (
	"fmt"
	"os"
	"sync/atomic"
)

var labSeq atomic.Int64

// uniqueName gives a lab name no other test, parallel or in another
// process, uses at the same time.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%1000000, labSeq.Add(1))
}
