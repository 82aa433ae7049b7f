// Package memtrim gives back the memory a long-lived process touched only
// while starting.
//
// Every lifeline role is the same binary, so a process runs the package
// initialisation of everything linked into it (the embedded NATS server,
// TLS, HTTP, JetStream, ...), whatever its role. Those code and read-only
// data pages stay mapped, and counted in its resident set, for the life of
// the process although a small agent never runs them again. They are clean
// copies of the executable file: dropping the mappings loses nothing, the
// kernel keeps the file in its page cache (shared with every other lifeline
// process), and a page that is needed again is mapped back on first use.
package memtrim

// Stats says what ReleaseStartupPages did.
type Stats struct {
	Mappings int   // executable mappings released
	Bytes    int64 // resident bytes they held before
}
