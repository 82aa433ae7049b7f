package dashboard

import "github.com/gofiber/fiber/v3"

// handleAlerts answers GET /api/alerts: the configured targets (service
// and digest, never the URL), how many alerts this dashboard sent, and its
// recent delivery failures, for the page's notice.
func (d *Dashboard) handleAlerts(c fiber.Ctx) error {
	if d.alerts == nil {
		return c.JSON(AlertsInfo{Targets: []string{}, Failures: []AlertFailure{}})
	}
	return c.JSON(d.alerts.info())
}
