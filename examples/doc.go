// Package examples holds bots written in other languages (python/, shell/)
// and the tests that run them against a real notify socket; it has no Go
// API. See README.md in this directory.
package examples
