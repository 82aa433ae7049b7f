//go:build !race

package dashboard

// raceBuild: the race detector makes fleet-sized tests ten times slower.
const raceBuild = false
