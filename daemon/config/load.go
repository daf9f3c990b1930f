package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

var errNotEthernet = errors.New("not a 6-byte Ethernet MAC")

// envKeys are the scalar keys an environment variable may override.
var envKeys = []string{"version", "router_id", "asn", "gateway_mac"}

func init() {
	for k := range defaults {
		envKeys = append(envKeys, k)
	}
}

// defaults are applied before the file.
var defaults = map[string]any{
	"kernel.route_protocol":    77,
	"kernel.rule_priority":     1000,
	"kernel.txqueuelen":        10000,
	"bgp.community":            "",
	"bgp.graceful_restart":     "120s",
	"bgp.listen_port":          -1,
	"forwarding.hold":          "3s",
	"forwarding.device":        "roamd-fwd",
	"forwarding.port":          4789,
	"forwarding.notify_port":   0,
	"forwarding.notify_key":    "",
	"safety.frames_per_second": 200,
	"safety.freeze_moves":      5,
	"safety.freeze_window":     "180s",
	"state.journal":            "/run/roamd/journal",
	"api.socket":               "/run/roamd/roamd.sock",
	"metrics.listen":           "",
	"metrics.pprof":            false,
	"log.format":               "text",
	"log.level":                "info",
	"timers.reconcile":         "30s",
	"timers.drain":             "5s",
	"timers.staged_expiry":     "120s",
	"timers.startup_hold":      "10s",
}

// Load reads, parses and validates the configuration file at path.
// Environment variables ROAMD_<KEY> (dots as underscores) override scalar keys.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(raw, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse parses and validates YAML configuration text. lookupEnv supplies
// ROAMD_ overrides (nil: none).
func Parse(yamlText []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	if err := v.ReadConfig(bytes.NewReader(yamlText)); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if lookupEnv != nil {
		for _, k := range envKeys {
			name := "ROAMD_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
			if val, ok := lookupEnv(name); ok {
				v.Set(k, val)
			}
		}
	}

	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc(),
		)
	})
	if err != nil {
		return nil, cleanDecodeError(err)
	}
	applyDefaults(&cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// cleanDecodeError puts mapstructure's one-problem-per-line report on one
// line, each problem starting with the key it is about.
func cleanDecodeError(err error) error {
	var msgs []string
	for _, l := range strings.Split(strings.TrimSpace(err.Error()), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "*"))
		if l == "" || strings.HasSuffix(l, "error(s) decoding:") || strings.HasPrefix(l, "decoding failed due to") {
			continue
		}
		if m := invalidKeys.FindStringSubmatch(l); m != nil {
			for _, k := range strings.Split(m[2], ",") {
				key := strings.TrimSpace(k)
				if m[1] != "" {
					key = m[1] + "." + key
				}
				msgs = append(msgs, key+": unknown key")
			}
			continue
		}
		if m := quotedKey.FindStringSubmatch(l); m != nil {
			l = m[1] + ": " + m[2]
		}
		msgs = append(msgs, l)
	}
	return errors.New(strings.Join(msgs, "; "))
}

var (
	invalidKeys = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	quotedKey   = regexp.MustCompile(`^'([^']+)' (.*)$`)
)

// applyDefaults fills per-element defaults viper cannot express.
func applyDefaults(c *Config) {
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.Table == 0 {
			t.Table = 254
		}
		for j := range t.Peers {
			p := &t.Peers[j]
			if p.HoldTime == 0 {
				p.HoldTime = 9e9
			}
			if p.Keepalive == 0 {
				p.Keepalive = p.HoldTime / 3
			}
			if p.ConnectRetry == 0 {
				p.ConnectRetry = 5e9
			}
			if p.Port == 0 {
				p.Port = 179
			}
			if len(p.Families) == 0 {
				if p.Address.Is4() {
					p.Families = []string{FamilyIPv4}
				} else {
					p.Families = []string{FamilyIPv6}
				}
			}
		}
	}
}
