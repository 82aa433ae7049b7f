package web

import (
	"io/fs"
	"strings"
	"testing"
)

func TestFSHasThePage(t *testing.T) {
	fsys := FS()
	for _, name := range []string{"index.html", "app.js", "style.css", "favicon.svg"} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if len(data) == 0 {
			t.Errorf("%s is empty", name)
		}
		// No CDN: the page must work offline and under default-src 'self'.
		if s := string(data); strings.Contains(s, "https://") || strings.Contains(s, "http://") && name != "favicon.svg" {
			t.Errorf("%s refers to another origin", name)
		}
	}
}

func TestPageElementIDs(t *testing.T) {
	data, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	// Later browser tests select these; keep them stable.
	for _, id := range []string{
		"bot-state", "bot-pid", "restart-btn", "stop-btn", "start-btn", "restart-result", "live-indicator",
		"events", "bots-table", "login", "login-form", "login-token", "logout-link",
		"confirm-dialog", "confirm-ok", "confirm-cancel",
	} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("index.html lacks #%s", id)
		}
	}
	// The CSP forbids inline script and style.
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") || strings.Contains(page, "onclick") {
		t.Errorf("index.html has inline script or style")
	}
}

func TestScriptIsSafe(t *testing.T) {
	data, err := fs.ReadFile(FS(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(data)
	// Bot names, hosts and reasons come from the bus: the script must set
	// text, never parse HTML. Confirmation uses the page's own <dialog>.
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "window.confirm", ".style."} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

// TestViewerSeesNoControls: a viewer token's session ("role":"viewer")
// must hide the page's restart, stop and start controls and say why; the
// server refuses a viewer's commands anyway.
func TestViewerSeesNoControls(t *testing.T) {
	page, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"view-only", "view-only-note", "bot-actions"} {
		if !strings.Contains(string(page), `id="`+id+`"`) {
			t.Errorf("index.html lacks #%s", id)
		}
	}
	// The emergency card's buttons sit inside #bot-actions, so hiding it
	// hides them all.
	html := string(page)
	start := strings.Index(html, `id="bot-actions"`)
	end := strings.Index(html[max(start, 0):], "</div>")
	if start < 0 || end < 0 {
		t.Fatal("cannot find #bot-actions")
	}
	block := html[start : start+end]
	for _, id := range []string{"restart-btn", "stop-btn", "start-btn"} {
		if !strings.Contains(block, `id="`+id+`"`) {
			t.Errorf("#%s is not inside #bot-actions", id)
		}
	}

	js, err := fs.ReadFile(FS(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`body.role === "viewer"`,           // the session's role is read
		`$("bot-actions").hidden = viewer`, // the card's controls go
		`$("view-only").hidden = !viewer`,  // the note comes
		`if (has) cell.replaceChildren();`, // the table rows lose their buttons
		`page.busy.has(key) || isViewer()`, // and no command starts
	} {
		if !strings.Contains(string(js), want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}
