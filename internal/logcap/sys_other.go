//go:build !unix

package logcap

import (
	"fmt"
	"os"
)

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

func openFIFO(string, string) (*os.File, *os.File, error) { return nil, nil, ErrUnsupported }

// drain cannot read without waiting here; Close then keeps only what the
// reader already had.
func drain(*os.File, []byte) int { return 0 }
