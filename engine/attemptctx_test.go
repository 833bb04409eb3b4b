package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAttemptContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	defer cancel()
	a := newAttemptContext(parent)
	defer a.release()
	assert.Equal(t, "v", a.Value(ctxKey{}), "values come from the parent")

	// Attempts within their deadline leave it live, again and again.
	for range 100 {
		a.arm(time.Hour)
		dl, ok := a.Deadline()
		require.True(t, ok)
		require.WithinDuration(t, time.Now().Add(time.Hour), dl, time.Minute)
		require.False(t, a.disarm())
		require.NoError(t, a.Err())
	}

	// One that runs past it sees the context end, for good.
	a.arm(5 * time.Millisecond)
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the deadline never ended the attempt")
	}
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	assert.True(t, a.disarm())
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "an ended context stays ended")
}

// A timer that fires for an earlier attempt, late, does not end the next.
func TestAttemptContextIgnoresAStaleTimer(t *testing.T) {
	a := newAttemptContext(context.Background())
	defer a.release()
	a.arm(time.Hour)
	a.expire() // as if the timer of an attempt long gone fired now
	assert.False(t, a.disarm())
	assert.NoError(t, a.Err())
}

func TestAttemptContextEndsWithItsParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	a := newAttemptContext(parent)
	defer a.release()
	a.arm(time.Hour)
	cancel()
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the parent's end never reached the attempt")
	}
	assert.ErrorIs(t, a.Err(), context.Canceled)
	assert.True(t, a.disarm())
}

type ctxKey struct{}
