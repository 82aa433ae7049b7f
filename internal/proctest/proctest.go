// Package proctest holds process helpers for tests of several packages:
// what tests ask of a process they started or planted, the same way on
// every system.
package proctest
