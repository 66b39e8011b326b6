package custom

import (
	"bytes"
	"io"
	"sync"

	"github.com/initializer/initializer/secret"
)

// maxPending is how much of an unfinished line is held before it is written
// anyway.
const maxPending = 64 << 10

// scrubWriter relays a handler's output line by line (a line ends at \n or
// \r, so progress bars keep moving), blanking every secret this process knows
// (secret.Scrub): the keys passed to the handler among them.
type scrubWriter struct {
	mu      sync.Mutex
	w       io.Writer
	pending []byte
}

func newScrubWriter(w io.Writer) *scrubWriter { return &scrubWriter{w: w} }

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
	out := secret.Scrub(string(s.pending[:end+1]))
	s.pending = append(s.pending[:0], s.pending[end+1:]...)
	if _, err := io.WriteString(s.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
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
