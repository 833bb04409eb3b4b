package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/zmqpipeline/zmqpipeline/transport"
)

// Errors of Authorize, matchable with errors.Is.
var (
	// ErrUnauthenticated: the peer presented no key (its Listener does
	// not authenticate, or the message did not come through one).
	ErrUnauthenticated = errors.New("auth: the peer is not authenticated")
	// ErrForbidden: the peer's key may not take the role it asked for.
	ErrForbidden = errors.New("auth: forbidden")
)

// Access is an access list: the client keys that may take part in a run,
// each with a name (for logs) and the roles it may take. Listeners accept
// only the keys on it, and the engine checks every hello, metadata and
// result against it.
//
// Its text form has one key per line: the public key in Z85, its roles
// separated by commas, and a name. A line that starts with # is a
// comment, and so is the rest of a line from a # after the roles.
//
//	# key                                       roles                        name
//	rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7    worker:resize,worker:crop    worker-a
//	Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID    collector                    collector-1
//	D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs    metadata                     metadata
//
// The roles are worker (of every task type), worker:TYPE (of that type
// only), collector, metadata, status (an operator's key, which may ask
// the distributor how the run is and take no part in it), and all.
type Access struct {
	byKey map[string]*Entry // by the key in Z85, the principal
	order []*Entry
}

// Entry is one key on an access list.
type Entry struct {
	Key  Key
	Name string
	// Roles are the roles as written: "worker", "worker:TYPE",
	// "collector", "metadata", "status" (may ask the distributor for the
	// run's status, and do nothing else) or "all".
	Roles []string
}

// Allows reports whether the entry may take role; a worker, for taskType.
func (e *Entry) Allows(role transport.Role, taskType string) bool {
	for _, r := range e.Roles {
		switch {
		case r == "all":
			return true
		case role == transport.RoleWorker && (r == "worker" || r == "worker:"+taskType):
			return true
		case role == transport.RoleCollector && r == "collector",
			role == transport.RoleMetadata && r == "metadata",
			role == transport.RoleObserver && r == "status":
			return true
		}
	}
	return false
}

// NewAccess returns an access list of the given entries. Keys must be
// distinct, and roles well formed; an entry without a name is named after
// the start of its key.
func NewAccess(entries ...Entry) (*Access, error) {
	a := &Access{byKey: make(map[string]*Entry, len(entries))}
	for _, e := range entries {
		if err := a.add(e); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Access) add(e Entry) error {
	if e.Key.IsZero() {
		return errors.New("auth: access list: the zero key")
	}
	k := e.Key.String()
	if _, dup := a.byKey[k]; dup {
		return fmt.Errorf("auth: access list: key %s is listed twice", k)
	}
	if len(e.Roles) == 0 {
		return fmt.Errorf("auth: access list: key %s has no roles", k)
	}
	for _, r := range e.Roles {
		if err := checkRole(r); err != nil {
			return fmt.Errorf("auth: access list: key %s: %w", k, err)
		}
	}
	if e.Name == "" {
		e.Name = k[:8]
	}
	e.Roles = slices.Clone(e.Roles)
	a.byKey[k] = &e
	a.order = append(a.order, &e)
	return nil
}

func checkRole(r string) error {
	switch {
	case r == "worker", r == "collector", r == "metadata", r == "status", r == "all":
		return nil
	case strings.HasPrefix(r, "worker:") && len(r) > len("worker:"):
		return nil
	}
	return fmt.Errorf("role %q: want worker, worker:TYPE, collector, metadata, status or all", r)
}

// ParseAccess reads an access list in its text form (see Access); source
// names it in errors.
func ParseAccess(r io.Reader, source string) (*Access, error) {
	a := &Access{byKey: make(map[string]*Entry)}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		fields := commentless(strings.Fields(sc.Text()))
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("%s:%d: want a key, its roles and a name, got %d fields", source, n, len(fields))
		}
		k, err := ParseKey(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n, err)
		}
		e := Entry{Key: k, Roles: strings.Split(fields[1], ",")}
		if len(fields) == 3 {
			e.Name = fields[2]
		}
		if err := a.add(e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return a, nil
}

// commentless drops a line's comment: the whole line when it starts
// with # (no key in Z85 does: its first five characters would overflow 32
// bits), and the rest of a line from a field, past the key and the
// roles, that starts with # (keys may hold # further in).
func commentless(fields []string) []string {
	if len(fields) > 0 && strings.HasPrefix(fields[0], "#") {
		return nil
	}
	for i := 2; i < len(fields); i++ {
		if strings.HasPrefix(fields[i], "#") {
			return fields[:i]
		}
	}
	return fields
}

// LoadAccess reads an access list from a file.
func LoadAccess(name string) (*Access, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("auth: access list: %w", err)
	}
	defer f.Close()
	return ParseAccess(f, name)
}

// Entries returns the list's entries, in the order they were given.
func (a *Access) Entries() []Entry {
	out := make([]Entry, len(a.order))
	for i, e := range a.order {
		out[i] = *e
		out[i].Roles = slices.Clone(e.Roles)
	}
	return out
}

// Lookup returns the entry of a principal: a client key in Z85, as a
// Listener that authenticates reports it (transport.Envelope.Principal).
func (a *Access) Lookup(principal string) (*Entry, bool) {
	if a == nil {
		return nil, false
	}
	e, ok := a.byKey[principal]
	return e, ok
}

// Authorize returns nil if principal may take role (a worker: of
// taskType), and otherwise an error wrapping ErrUnauthenticated or
// ErrForbidden that says why.
func (a *Access) Authorize(principal string, role transport.Role, taskType string) error {
	if principal == "" {
		return ErrUnauthenticated
	}
	e, ok := a.Lookup(principal)
	if !ok {
		return fmt.Errorf("%w: key %s is not on the access list", ErrForbidden, principal)
	}
	if !e.Allows(role, taskType) {
		what := role.String()
		if role == transport.RoleWorker {
			what = fmt.Sprintf("a worker of task type %q", taskType)
		}
		return fmt.Errorf("%w: key %s (%s) may not be %s; it may be: %s", ErrForbidden, principal, e.Name, what, strings.Join(e.Roles, ", "))
	}
	return nil
}
