package hosts

import "slices"

// This file: the migration engine's hints (arrive, switch, depart).

func (t *Table) hint(in Hint) []Action {
	if t.tenants[in.Tenant] == nil {
		return []Action{Refused{Key: Key{Tenant: in.Tenant}, Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownPort}}
	}
	addrs := in.Addrs
	if len(addrs) == 0 && len(in.MAC) == 6 {
		addrs = slices.Clone(t.bindings[in.Tenant][string(in.MAC)])
	}
	if len(addrs) == 0 {
		return []Action{Refused{Key: Key{Tenant: in.Tenant}, Port: in.Port, MAC: in.MAC, Reason: RefuseUnknownMAC}}
	}
	var acts []Action
	switch in.Kind {
	case HintArrive:
		for _, a := range addrs {
			key := Key{Tenant: in.Tenant, Addr: a.Unmap()}
			if reason := t.authorise(key, in.MAC); reason != "" {
				acts = append(acts, Refused{Key: key, Port: in.Port, MAC: in.MAC, Reason: reason})
				continue
			}
			t.bind(in.Tenant, in.MAC, key.Addr)
			h := t.host(key, in.Time)
			if h.State == Announced || h.State == Local {
				continue // already here
			}
			h.MAC = slices.Clone(in.MAC)
			t.setPort(h, in.Port)
			t.setState(h, Staged, in.Time)
		}
		if _, up := t.ports[in.Port]; up && in.Port != "" {
			acts = append(acts, StagePort{Port: in.Port, MAC: slices.Clone(in.MAC), Addrs: t.stagedAddrs(in.Port, in.MAC)})
		}
	case HintSwitch:
		for _, a := range addrs {
			key := Key{Tenant: in.Tenant, Addr: a.Unmap()}
			port := in.Port
			if h := t.hosts[key]; port == "" && h != nil {
				port = h.Port
			}
			p, ok := t.ports[port]
			if !ok || p.Tenant != in.Tenant {
				acts = append(acts, Refused{Key: key, Port: port, MAC: in.MAC, Reason: RefuseUnknownPort})
				continue
			}
			mac := in.MAC
			if len(mac) == 0 {
				mac = t.macOf(key)
			}
			acts = append(acts, t.claim(p, Frame{Time: in.Time, Port: port, Source: SourceHint, MAC: mac, Addr: key.Addr})...)
		}
	case HintDepart:
		for _, a := range addrs {
			if h := t.hosts[Key{Tenant: in.Tenant, Addr: a.Unmap()}]; h != nil {
				acts = append(acts, t.leave(h, in.Time)...)
			}
		}
	}
	return acts
}
