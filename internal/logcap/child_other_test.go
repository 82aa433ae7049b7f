//go:build !unix

package logcap

import (
	"fmt"
	"os"
)

// runAgent would hold a Capture on named pipes, which only Unix has (see
// openFIFO): the kill -9 test that runs it is Unix-only.
func runAgent() {
	fmt.Println("error", ErrUnsupported)
	os.Exit(1)
}
