//go:build cgo && linux

package zmqtransport

/*
#include <stdlib.h>
*/
import "C"

import (
	"crypto/rand"
	"encoding/binary"
)

// seedLibzmqRandom seeds the C library's rand(), from which libzmq 4.3
// draws the first routing id each ROUTER generates for peers that bring
// none. Unseeded, the sequence is the same in every process (the first id
// is always 00 6b 8b 45 67), so a peer could claim the ids a listener is
// about to generate and make libzmq abort the process when it does (see
// newRoutingID). Seeded from the system's random source, the ids cannot
// be guessed.
func seedLibzmqRandom() {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	C.srand(C.uint(binary.LittleEndian.Uint32(b[:])))
}
