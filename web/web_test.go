package web

import (
	"io/fs"
	"strings"
	"testing"
)

func TestFSHasThePage(t *testing.T) {
	fsys := FS()
	for _, name := range append([]string{"index.html", "style.css", "favicon.svg"}, appModules...) {
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

// appModules are the page's own ES modules: app.js and what it imports.
var appModules = []string{
	"app.js", "alerts.js", "card.js", "commands.js", "dom.js", "events.js",
	"format.js", "frame.js", "list.js", "session.js", "state.js", "stream.js",
}

// TestModulesAreAllListed: every module an app module imports is in
// appModules (so the tests here read it) and is embedded, and imports are
// relative ("./x.js"), so they resolve under /static/ with no import map.
func TestModulesAreAllListed(t *testing.T) {
	listed := make(map[string]bool, len(appModules))
	for _, name := range appModules {
		listed[name] = true
	}
	for _, name := range appModules {
		data, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "import ") {
				continue
			}
			_, from, ok := strings.Cut(line, ` from "`)
			if !ok {
				_, from, ok = strings.Cut(line, `import "`)
			}
			from, _, _ = strings.Cut(from, `"`)
			dep, rel := strings.CutPrefix(from, "./")
			if !ok || !rel || strings.Contains(dep, "/") || !strings.HasSuffix(dep, ".js") {
				t.Errorf("%s: import not of a sibling module: %s", name, line)
				continue
			}
			if !listed[dep] {
				t.Errorf("%s imports %s, which appModules lacks", name, dep)
			}
		}
	}
	page, err := fs.ReadFile(FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `<script type="module" src="/static/app.js"></script>`) {
		t.Error("index.html does not load app.js as a module")
	}
}

func TestScriptIsSafe(t *testing.T) {
	for _, name := range appModules {
		data, err := fs.ReadFile(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		js := string(data)
		// Bot names, hosts and reasons come from the bus: the script must set
		// text, never parse HTML. Confirmation uses the page's own <dialog>.
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "window.confirm", ".style."} {
			if strings.Contains(js, bad) {
				t.Errorf("%s uses %s", name, bad)
			}
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

	for _, want := range []struct{ module, code string }{
		{"session.js", `body.role === "viewer"`},            // the session's role is read
		{"session.js", `$("bot-actions").hidden = viewer`},  // the card's controls go
		{"session.js", `$("view-only").hidden = !viewer`},   // the note comes
		{"list.js", `if (has) cell.replaceChildren();`},     // the table rows lose their buttons
		{"commands.js", `page.busy.has(key) || isViewer()`}, // and no command starts
	} {
		js, err := fs.ReadFile(FS(), want.module)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(js), want.code) {
			t.Errorf("%s lacks %s", want.module, want.code)
		}
	}
}
