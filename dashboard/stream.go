package dashboard

import (
	"bufio"
	"net"
	"strconv"
	"time"
)

// streamBatch is how many queued events a stream writes at most in one go.
const streamBatch = 64

// keepAliveFrame is the comment an idle stream gets every keepAliveInterval,
// as one HTTP chunk ("e" is its length, 14).
const keepAliveFrame = "e\r\n: keep-alive\n\n\r\n"

// serveStream writes a live stream on the connection fasthttp handed over:
// head (the HTTP response header), "retry", the snapshot, then each event
// the subscriber gets, until it is closed or the client goes away.
//
// A stream costs one goroutine, woken once per flush, and one write: the
// events queued since the last write go out together, and each is written
// from the frame built once for every stream (sseMsg.framed), not copied.
// With chunked false (an HTTP/1.0 client) the body is the events
// unchunked, ended by closing the connection.
func serveStream(conn net.Conn, head []byte, chunked bool, sub *subscriber, snapshot [][]byte) {
	raw := conn
	if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
		// fasthttp's wrapper hides the TCP connection's writev.
		raw = u.UnsafeConn()
	}
	sub.attach(raw)
	if _, err := raw.Write(head); err != nil {
		return
	}
	bw := bufio.NewWriterSize(chunkWriter{w: raw, chunked: chunked}, 64<<10)
	bw.WriteString("retry: 2000\n\n")
	writeSnapshot(bw, snapshot)
	if bw.Flush() != nil {
		return
	}
	snapshot = nil // the writer may live for days; the snapshot need not
	keepAlive := time.NewTicker(keepAliveInterval)
	defer keepAlive.Stop()
	_, tcp := raw.(*net.TCPConn)
	var (
		arr  [streamBatch][]byte
		join []byte // the batch in one piece, for a connection without writev (TLS)
	)
	for {
		bufs := net.Buffers(arr[:0])
		select {
		case <-sub.done:
			if chunked {
				raw.Write([]byte("0\r\n\r\n")) // the end of the body, within streamEndGrace
			}
			return
		case m := <-sub.ch:
			bufs = append(bufs, wireBytes(m, chunked))
		more:
			for len(bufs) < streamBatch {
				select {
				case m := <-sub.ch:
					bufs = append(bufs, wireBytes(m, chunked))
				default:
					break more
				}
			}
		case <-keepAlive.C:
			if chunked {
				bufs = append(bufs, []byte(keepAliveFrame))
			} else {
				bufs = append(bufs, []byte(keepAliveFrame[3:len(keepAliveFrame)-2]))
			}
		}
		var err error
		if tcp || len(bufs) == 1 {
			_, err = bufs.WriteTo(raw)
		} else {
			join = join[:0]
			for _, b := range bufs {
				join = append(join, b...)
			}
			_, err = raw.Write(join)
			if cap(join) > 256<<10 {
				join = nil // a big batch once; not kept for good
			}
		}
		clear(arr[:])
		if err != nil {
			return // the client went away, or was dropped as too slow
		}
	}
}

// wireBytes is the event as the stream writes it: m's shared frame, or its
// part without chunking.
func wireBytes(m *sseMsg, chunked bool) []byte {
	m = m.framed() // built already by broadcastLocked; this is for tests' messages
	if chunked {
		return m.frame
	}
	return m.frame[m.hl : len(m.frame)-2]
}

// chunkWriter writes each Write as one HTTP chunk, or as is.
type chunkWriter struct {
	w       net.Conn
	chunked bool
}

func (c chunkWriter) Write(p []byte) (int, error) {
	if !c.chunked || len(p) == 0 {
		return c.w.Write(p)
	}
	var line [20]byte
	bufs := net.Buffers{append(strconv.AppendInt(line[:0], int64(len(p)), 16), '\r', '\n'), p, []byte("\r\n")}
	if _, err := bufs.WriteTo(c.w); err != nil {
		return 0, err
	}
	return len(p), nil
}
