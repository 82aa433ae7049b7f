package web

import (
	"io/fs"
	"strings"
	"testing"
)

// TestChartsAreEmbedded: the charts' script, style and the vendored uPlot
// (with its licence) are in the binary, and the page loads them from itself.
func TestChartsAreEmbedded(t *testing.T) {
	fsys := FS()
	for _, name := range []string{"charts.js", "charts.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css", "vendor/uPlot.LICENSE"} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil || len(data) == 0 {
			t.Fatalf("read %s: %v (%d bytes)", name, err, len(data))
		}
	}
	page, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{`src="/static/vendor/uPlot.iife.min.js"`, `src="/static/charts.js"`,
		`href="/static/vendor/uPlot.min.css"`, `href="/static/charts.css"`, `id="charts"`} {
		if !strings.Contains(string(page), ref) {
			t.Errorf("index.html lacks %s", ref)
		}
	}
	js, _ := fs.ReadFile(fsys, "charts.js")
	// Bot names come from the bus: set text, never parse HTML.
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "http://", "https://"} {
		if strings.Contains(string(js), bad) {
			t.Errorf("charts.js uses %s", bad)
		}
	}
	// uPlot builds its DOM with createElement and styles it through the
	// CSSOM, which the page's CSP (no inline style) allows.
	lib, _ := fs.ReadFile(fsys, "vendor/uPlot.iife.min.js")
	for _, bad := range []string{"innerHTML", "<style", "cssText", `setAttribute("style"`} {
		if strings.Contains(string(lib), bad) {
			t.Errorf("uPlot uses %s, which the CSP may refuse", bad)
		}
	}
}
