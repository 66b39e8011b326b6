package store

import (
	"context"
	"testing"
	"time"
)

// abortContext outlives its upload's context, but not by more than
// abortAfterEnd once that context has ended.
func TestAbortContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	actx, stop := abortContext(ctx)
	defer stop()
	cancel()
	select {
	case <-actx.Done():
		t.Fatal("the abort's context ended with the upload's")
	case <-time.After(abortAfterEnd / 2):
	}
	select {
	case <-actx.Done():
	case <-time.After(abortAfterEnd + 5*time.Second):
		t.Fatal("the abort's context outlived the upload's by far more than abortAfterEnd")
	}
	// Stopped before the upload's context ends: nothing lingers.
	ctx2, cancel2 := context.WithCancel(context.Background())
	actx2, stop2 := abortContext(ctx2)
	stop2()
	cancel2()
	if actx2.Err() == nil {
		t.Error("the abort's context is not ended by its cancel")
	}
}
