package engine

import (
	"sync"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// The item slices of work, result and ACK messages are recycled: a
// component that received a batch puts its slice back once it has read
// it (what it keeps, a payload, is not in the slice), and a component that
// sends one takes a slice from here. In process, where a message's memory
// changes hands with it (Envelope.Handover), the same slices go round and
// round; over ZeroMQ, those the transport decoded join them. It saves the
// garbage of three slices of items per item batch, about 180 bytes an
// item.
var itemSlices sync.Pool // of *[]transport.Item

// minItemSlice is the least capacity a new slice gets.
const minItemSlice = 64

// getItems returns an empty slice with room for n items.
func getItems(n int) []transport.Item {
	if p, ok := itemSlices.Get().(*[]transport.Item); ok {
		if s := *p; cap(s) >= n {
			return s[:0]
		}
	}
	return make([]transport.Item, 0, max(n, minItemSlice))
}

// putItems gives back the item slice of a message that was read: nothing
// may use it or the items in it afterwards. It drops the items' payloads,
// which their new owners keep.
func putItems(s []transport.Item) {
	if cap(s) == 0 || cap(s) > maxPooledItems {
		return
	}
	clear(s)
	itemSlices.Put(&s)
}

// maxPooledItems bounds the slices kept: a peer's batch of an unusual
// size is left to the garbage collector.
const maxPooledItems = 4096
