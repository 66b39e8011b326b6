package custom

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/initializer/initializer/secret"
)

// maxPending is how much of an unfinished line is held before it is written
// anyway.
const maxPending = 64 << 10

// scrubWriter relays a handler's output line by line (a line ends at \n or
// \r, so progress bars keep moving), blanking every secret this process knows
// (secret.Scrub): the keys passed to the handler among them. Those keys'
// values are also held back whole when they span lines (a PEM key, a JSON
// key file) or a forced write: scrubbing line by line would let their lines
// through, since only the whole value is known as a secret.
type scrubWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string
	pending []byte
}

func newScrubWriter(w io.Writer, secrets []string) *scrubWriter {
	return &scrubWriter{w: w, secrets: secrets}
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, p...)
	end := bytes.LastIndexAny(s.pending, "\n\r")
	if end < 0 && len(s.pending) < maxPending {
		return len(p), nil
	}
	if end < 0 {
		end = len(s.pending) - 1
	}
	cut := safeCut(s.pending, end+1, s.secrets)
	if cut == 0 {
		return len(p), nil
	}
	out := secret.Scrub(string(s.pending[:cut]))
	s.pending = append(s.pending[:0], s.pending[cut:]...)
	if _, err := io.WriteString(s.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// safeCut moves cut, where buf is to be cut for writing, back to the start
// of any of secrets that begins before it and runs past it, whole or as far
// as buf goes (it may go on in the next write), until none does: what is
// written before the cut then holds no part of a secret without the rest.
func safeCut(buf []byte, cut int, secrets []string) int {
	for moved := true; moved; {
		moved = false
		for _, sec := range secrets {
			for i := max(0, cut-len(sec)+1); i < cut; i++ {
				if buf[i] != sec[0] {
					continue
				}
				n := min(len(sec), len(buf)-i)
				if string(buf[i:i+n]) == sec[:n] {
					cut, moved = i, true
					break
				}
			}
		}
	}
	return cut
}

// Flush writes what is left of an unfinished last line.
func (s *scrubWriter) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		io.WriteString(s.w, secret.Scrub(string(s.pending)))
		s.pending = s.pending[:0]
	}
}

// logLines turns the relayed lines of a handler's stderr into log lines
// (with --log-format json, where stderr holds only JSON lines).
type logLines struct {
	log *slog.Logger
}

func (l logLines) Write(p []byte) (int, error) {
	for _, line := range strings.FieldsFunc(string(p), func(r rune) bool { return r == '\n' || r == '\r' }) {
		l.log.Info("handler stderr", "line", line)
	}
	return len(p), nil
}
