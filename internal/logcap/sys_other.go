//go:build !unix

package logcap

import (
	"fmt"
	"os"

	"github.com/lifeline-dev/lifeline/internal/privfile"
)

// openLog opens the log for appending; on Windows a reparse point there
// is refused, not followed.
func openLog(path string) (*os.File, error) {
	f, err := privfile.OpenAppend(path)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

func openFIFO(string, string) (*os.File, *os.File, error) { return nil, nil, ErrUnsupported }
