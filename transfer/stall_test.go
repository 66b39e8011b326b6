package transfer

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/initializer/initializer/fault"
)

// A stream that stops sending is cut after the idle time with a transient
// error; one that keeps sending, however slowly, is not.
func TestStallWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stuck := readerFn(func(p []byte) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	w := watchStall(io.MultiReader(strings.NewReader("some bytes"), stuck), 50*time.Millisecond, cancel)
	_, err := io.ReadAll(w)
	err = w.Stop(err)
	if fault.ClassOf(err) != fault.Transient || !strings.Contains(err.Error(), "stalled") {
		t.Errorf("stalled stream: %v", err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	n := 0
	slow := readerFn(func(p []byte) (int, error) {
		if n == 8 {
			return 0, io.EOF
		}
		n++
		time.Sleep(30 * time.Millisecond) // under the idle time each, over it in all
		p[0] = 'x'
		return 1, nil
	})
	w = watchStall(slow, 50*time.Millisecond, cancel2)
	b, err := io.ReadAll(w)
	if err = w.Stop(err); err != nil || len(b) != 8 || ctx2.Err() != nil {
		t.Errorf("slow stream: %d bytes, %v, %v", len(b), err, ctx2.Err())
	}
}

type readerFn func([]byte) (int, error)

func (f readerFn) Read(p []byte) (int, error) { return f(p) }
