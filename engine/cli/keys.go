package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/zmqpipeline/zmqpipeline/engine"
	"github.com/zmqpipeline/zmqpipeline/transport"
	"github.com/zmqpipeline/zmqpipeline/transport/auth"
)

// Environment variables for keys, read when the matching flag is not
// given. ZMQPIPELINE_SECRET_KEY holds the secret key itself, in Z85, for
// where a file is awkward (a container's secret store); the others name
// files, and the server keys may also be the keys themselves.
const (
	EnvKey            = "ZMQPIPELINE_KEY"
	EnvSecretKey      = "ZMQPIPELINE_SECRET_KEY"
	EnvDistributorKey = "ZMQPIPELINE_DISTRIBUTOR_KEY"
	EnvCollectorKey   = "ZMQPIPELINE_COLLECTOR_KEY"
	EnvAccess         = "ZMQPIPELINE_ACCESS"
)

// keyFlags are the command line's keys, before they become an
// auth.Config.
type keyFlags struct {
	key, distributorKey, collectorKey, access, keygen string
}

func (k *keyFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&k.key, "key", "", "this process's CURVE key pair: a secret certificate (NAME.key_secret from -keygen); turns on authentication and encryption (env "+EnvKey+", or the secret key itself in "+EnvSecretKey+")")
	fs.StringVar(&k.distributorKey, "distributor-key", "", "the distributor's public key: its NAME.key file, or the key in Z85 (env "+EnvDistributorKey+")")
	fs.StringVar(&k.collectorKey, "collector-key", "", "the collector's public key: its NAME.key file, or the key in Z85 (env "+EnvCollectorKey+")")
	fs.StringVar(&k.access, "access", "", "distributor, collector: the access list, the client keys that may take part and their roles (env "+EnvAccess+")")
	fs.StringVar(&k.keygen, "keygen", "", "write a new key pair to NAME.key and NAME.key_secret, print the public key, and exit")
}

// keygen writes a new key pair for base and says what to do with it.
func keygen(w io.Writer, base string) error {
	kp, err := auth.GenerateKeyPair()
	if err != nil {
		return err
	}
	if err := auth.WriteKeyPair(base, kp); err != nil {
		return fmt.Errorf("%w: -keygen: %w", ErrUsage, err)
	}
	public, secret := auth.KeyFiles(base)
	fmt.Fprintf(w, "wrote %s (give it to the processes that connect to this one) and %s (keep it to this process: -key %s)\n", public, secret, secret)
	fmt.Fprintf(w, "public key: %s\n", kp.Public)
	fmt.Fprintf(w, "access list line (choose its roles): %s  worker  %s\n", kp.Public, filepath.Base(base))
	return nil
}

// security makes the Config's auth.Config from the key flags: nil without
// a key. A process that runs a listener needs an access list, except one
// that runs everything, which trusts its own key; a process that dials
// needs the public key of what it dials, except where it runs that part
// itself.
func (k *keyFlags) security(c *Config) (*auth.Config, error) {
	var (
		kp  auth.KeyPair
		err error
	)
	switch secret := os.Getenv(EnvSecretKey); {
	case k.key != "":
		if kp, err = auth.LoadKeyPair(k.key); err != nil {
			return nil, fmt.Errorf("%w: -key: %w", ErrUsage, err)
		}
		warnIfReadable(c, k.key)
	case secret != "":
		if kp, err = auth.ParseKeyPair(secret); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUsage, EnvSecretKey, err)
		}
	default:
		for flag, v := range map[string]string{"-distributor-key": k.distributorKey, "-collector-key": k.collectorKey, "-access": k.access} {
			if v != "" {
				return nil, fmt.Errorf("%w: %s needs -key: this process's own key pair", ErrUsage, flag)
			}
		}
		return nil, nil
	}
	for which, ep := range map[string]string{"-distributor": c.Endpoints.Distributor, "-collector": c.Endpoints.Collector} {
		if strings.HasPrefix(ep, "inproc://") {
			return nil, fmt.Errorf("%w: -key: keys protect ipc:// and tcp:// endpoints; %s is %q", ErrUsage, which, ep)
		}
	}
	cfg := &auth.Config{Key: kp, Servers: map[string]auth.Key{}, Logger: c.Logger}
	for _, s := range []struct {
		flag, value, endpoint string
		own, dials            bool
	}{
		{"-distributor-key", k.distributorKey, c.Endpoints.Distributor, c.Runs(RoleDistributor), c.Role != RoleDistributor},
		{"-collector-key", k.collectorKey, c.Endpoints.Collector, c.Runs(RoleCollector), c.Runs(RoleWorker)},
	} {
		switch {
		case s.value != "":
			pk, err := auth.LoadPublicKey(s.value)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrUsage, s.flag, err)
			}
			cfg.Servers[s.endpoint] = pk
		case s.own:
			cfg.Servers[s.endpoint] = kp.Public
		case s.dials:
			return nil, fmt.Errorf("%w: -role %s with -key needs %s: the public key of the one it connects to", ErrUsage, c.Role, s.flag)
		}
	}
	if c.Runs(RoleDistributor) || c.Runs(RoleCollector) {
		access, err := k.accessList(c, kp)
		if err != nil {
			return nil, err
		}
		cfg.Access = access
	}
	return cfg, nil
}

// accessList reads -access; a process that runs everything also admits
// its own key to every role.
func (k *keyFlags) accessList(c *Config, kp auth.KeyPair) (*auth.Access, error) {
	var entries []auth.Entry
	if k.access != "" {
		a, err := auth.LoadAccess(k.access)
		if err != nil {
			return nil, fmt.Errorf("%w: -access: %w", ErrUsage, err)
		}
		entries = a.Entries()
	} else if c.Role != RoleAll {
		return nil, fmt.Errorf("%w: -role %s with -key needs -access: the list of client keys that may take part", ErrUsage, c.Role)
	}
	if c.Role == RoleAll {
		own := -1
		for i, e := range entries {
			if e.Key == kp.Public {
				own = i
			}
		}
		if own >= 0 {
			entries[own].Roles = []string{"all"}
		} else {
			entries = append(entries, auth.Entry{Key: kp.Public, Name: "this process", Roles: []string{"all"}})
		}
	}
	a, err := auth.NewAccess(entries...)
	if err != nil {
		return nil, fmt.Errorf("%w: -access: %w", ErrUsage, err)
	}
	return a, nil
}

// warnIfReadable warns when a secret key file can be read by others.
func warnIfReadable(c *Config, name string) {
	if info, err := os.Stat(name); err == nil && info.Mode().Perm()&0o077 != 0 {
		c.Logger.Warn("the secret key file can be read by other users: chmod 600 it", "file", name, "mode", info.Mode().Perm().String())
	}
}

// secureTransport returns the component option that makes every
// component of the process use the transport of its endpoints, secured
// with cfg.Security; none without keys.
func secureTransport(cfg *Config) ([]engine.Option, error) {
	if cfg.Security == nil {
		return nil, nil
	}
	var base transport.Transport
	for _, endpoint := range []string{cfg.Endpoints.Distributor, cfg.Endpoints.Collector} {
		if endpoint == "" {
			continue // -role status has no collector
		}
		_, t, err := transport.Resolve(endpoint)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		if base != nil && t != base {
			return nil, fmt.Errorf("%w: -key: the two endpoints are served by different transports", ErrUsage)
		}
		base = t
	}
	s, ok := base.(auth.Securer)
	if !ok {
		return nil, fmt.Errorf("%w: -key: the transport of %q cannot authenticate peers", ErrUsage, cfg.Endpoints.Distributor)
	}
	secured, err := s.Secure(*cfg.Security)
	if err != nil {
		return nil, fmt.Errorf("%w: -key: %w", ErrUsage, err)
	}
	return []engine.Option{engine.WithTransport(secured)}, nil
}
