package memtrim

import (
	"os"
	"testing"
)

const sampleSmaps = `00400000-00d4d000 r-xp 00000000 fe:00 9978437                            /opt/life line/lifeline (deleted)
Size:               9524 kB
Rss:                4980 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00d4d000-01698000 r--p 0094d000 fe:00 9978437                            /opt/life line/lifeline (deleted)
Rss:                5948 kB
Anonymous:             8 kB
01698000-0172c000 rw-p 01298000 fe:00 9978437                            /opt/life line/lifeline (deleted)
Rss:                 400 kB
Anonymous:           120 kB
0172c000-0377a000 rw-p 00000000 00:00 0
Rss:                 128 kB
Anonymous:           128 kB
7ffd5a1e0000-7ffd5a201000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   4 kB
Anonymous:             0 kB
`

func TestParseSmapsAndChoose(t *testing.T) {
	ms := parseSmaps([]byte(sampleSmaps))
	if len(ms) != 5 {
		t.Fatalf("parsed %d mappings, want 5: %+v", len(ms), ms)
	}
	exe := "/opt/life line/lifeline (deleted)"
	if ms[0].start != 0x400000 || ms[0].end != 0xd4d000 || ms[0].path != exe || ms[0].rssKB != 4980 {
		t.Errorf("first mapping parsed as %+v", ms[0])
	}
	var chosen []int
	for i, m := range ms {
		if m.releasable(exe) {
			chosen = append(chosen, i)
		}
	}
	// Only the code: the read-only segment has a page copied on write (as a
	// relocated segment would), the rest is writable or not the executable.
	if len(chosen) != 1 || chosen[0] != 0 {
		t.Errorf("releasable mappings %v, want [0]", chosen)
	}
}

// exeRSS sums the resident kB of this process's read-only executable mappings.
func exeRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	for _, m := range parseSmaps(data) {
		if m.releasable(exe) {
			kb += m.rssKB
		}
	}
	return kb
}

func TestReleaseStartupPagesShrinksTheResidentSet(t *testing.T) {
	before := exeRSS(t)
	st, err := ReleaseStartupPages()
	if err != nil {
		t.Fatal(err)
	}
	after := exeRSS(t)
	if st.Mappings == 0 || st.Bytes == 0 {
		t.Fatalf("released nothing: %+v (executable mappings held %d kB)", st, before)
	}
	// Reading smaps again maps some code back in (the kernel maps up to 64 KiB
	// around each page fault), but less than was released.
	if after >= before {
		t.Errorf("executable mappings hold %d kB after release, %d kB before", after, before)
	}
	// The process goes on running the code it dropped.
	if _, err := ReleaseStartupPages(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	t.Logf("released %d mappings holding %d kB; %d kB mapped back since", st.Mappings, st.Bytes>>10, after)
}
