package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"
)

// errCommandBody is the start of every refusal of a command's body.
var errCommandBody = errors.New("request body must be empty or {}")

// checkCommandBody accepts what a restart, stop or start request may carry:
// nothing, or an empty JSON object. Who asked is the dashboard's to say
// (requested_by), so a body has nothing to add, and anything in it is a
// mistake worth refusing before the agent hears of it.
func checkCommandBody(body []byte) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return fmt.Errorf("%w, not %s", errCommandBody, describeBody(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var none struct{}
	if err := dec.Decode(&none); err != nil {
		return fmt.Errorf("%w: %v", errCommandBody, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the object", errCommandBody)
	}
	return nil
}

func describeBody(b []byte) string {
	if len(b) > 16 {
		return fmt.Sprintf("%q... (%d bytes)", b[:16], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// refuseUnknownMethods answers a request whose method Fiber does not know
// (not GET, POST, ...) with the security headers and JSON error body of every
// other error. Fiber itself answers those with a bare text 501 before any
// middleware or the error handler runs.
func refuseUnknownMethods(app *fiber.App, https func(fiber.Ctx) bool) {
	srv := app.Server()
	next := srv.Handler
	known := app.Config().RequestMethods
	srv.Handler = func(rc *fasthttp.RequestCtx) {
		if slices.Contains(known, string(rc.Method())) {
			next(rc)
			return
		}
		c := app.AcquireCtx(rc)
		defer app.ReleaseCtx(c)
		setSecurityHeaders(c, https(c))
		_ = fail(c, fiber.StatusNotImplemented, fmt.Sprintf("method %.32q not implemented", rc.Method()))
	}
}
