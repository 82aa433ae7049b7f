// Package web holds the dashboard's page (HTML, script, style), embedded in
// the binary so the dashboard needs no files and no CDN at run time.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the page's files: index.html at the root, next to app.js
// (an ES module importing its siblings, see web_test.go's appModules),
// style.css and favicon.svg. The whole directory is embedded, so a new
// module needs no change here.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only for an invalid literal path, which is a bug here.
		panic("web: " + err.Error())
	}
	return sub
}
