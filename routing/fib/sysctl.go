package fib

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
)

// Sysctl writes one sysctl, key like "net/ipv4/conf/tap1/proxy_arp" (slashes,
// so interface names with dots work), in the FIB's network namespace.
type Sysctl func(key, value string) error

// ProcSysctl writes /proc/sys of the current process's network namespace. It
// is the default when New is given no Sysctl.
func ProcSysctl(key, value string) error {
	clean := path.Clean("/" + key)
	if strings.Contains(key, "..") || clean == "/" {
		return fmt.Errorf("sysctl key %q: not a plain key", key)
	}
	return os.WriteFile("/proc/sys"+clean, []byte(value), 0o644)
}

// setSysctls writes each key/value pair and joins the failures.
func (f *FIB) setSysctls(kv ...string) error {
	var errs []error
	for i := 0; i+1 < len(kv); i += 2 {
		if err := f.sysctl(kv[i], kv[i+1]); err != nil {
			errs = append(errs, fmt.Errorf("setting sysctl %s=%s: %w", kv[i], kv[i+1], err))
		}
	}
	return errors.Join(errs...)
}
