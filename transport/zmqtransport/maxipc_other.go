//go:build !linux

package zmqtransport

// MaxIPCPath is the longest ipc path the OS accepts: the size of sun_path
// in struct sockaddr_un less its terminating NUL (104 on the BSDs and
// macOS).
const MaxIPCPath = 103
