package fib

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The guard keeps VMs and tenant networks away from roamd's own UDP services.
// The forward device decapsulates VXLAN-GPE arriving on any local address and
// delivers the inner packet into the table its VNI names: a VM that sent GPE
// to its gateway address could put packets into another tenant. Move
// notifications, too, belong to the underlay. So an nftables table "roamd"
// drops UDP to those ports arriving on any VM port or tenant uplink (a set of
// interface names the FIB adds to as it prepares ports). nftables rather than
// policy routing because only a filter can match the ingress interface and
// the UDP port together; roamd talks to it over netlink (google/nftables),
// like everything else it writes.
const (
	guardTable = "roamd"
	guardSet   = "guarded"
	guardChain = "guard-input"
)

// ifnameKey is an interface name as nftables' ifname type stores it: NUL
// padded to IFNAMSIZ.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func (f *FIB) nft() (*nftables.Conn, error) {
	if f.ns.IsOpen() {
		return nftables.New(nftables.WithNetNSFd(int(f.ns)))
	}
	return nftables.New()
}

// ensureGuard (re)creates the guard table with the configured ports and the
// tenant uplinks; VM ports are added by PreparePort.
func (f *FIB) ensureGuard() error {
	if len(f.cfg.GuardUDPPorts) == 0 {
		return nil
	}
	c, err := f.nft()
	if err != nil {
		return fmt.Errorf("guard: opening nftables: %w", err)
	}
	defer c.CloseLasting()
	table := &nftables.Table{Name: guardTable, Family: nftables.TableFamilyINet}
	// Start from a clean table: a restart must not keep rules of an older
	// configuration. Deleting a missing table is not an error here.
	c.DelTable(table)
	_ = c.Flush()

	c.AddTable(table)
	set := &nftables.Set{Table: table, Name: guardSet, KeyType: nftables.TypeIFName}
	var elems []nftables.SetElement
	for _, t := range f.cfg.Tenants {
		for _, u := range t.Uplinks {
			elems = append(elems, nftables.SetElement{Key: ifnameKey(u)})
		}
	}
	if err := c.AddSet(set, elems); err != nil {
		return fmt.Errorf("guard: adding set: %w", err)
	}
	policy := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{
		Name: guardChain, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	for _, port := range f.cfg.GuardUDPPorts {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(port))},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("guard: installing the nftables table: %w", err)
	}
	return nil
}

// guardPort adds a VM port to the guarded interfaces.
func (f *FIB) guardPort(port string) error {
	if len(f.cfg.GuardUDPPorts) == 0 {
		return nil
	}
	c, err := f.nft()
	if err != nil {
		return fmt.Errorf("guard: opening nftables: %w", err)
	}
	defer c.CloseLasting()
	set := &nftables.Set{Table: &nftables.Table{Name: guardTable, Family: nftables.TableFamilyINet}, Name: guardSet, KeyType: nftables.TypeIFName}
	if err := c.SetAddElements(set, []nftables.SetElement{{Key: ifnameKey(port)}}); err != nil {
		return fmt.Errorf("guard: adding %s: %w", port, err)
	}
	if err := c.Flush(); err != nil {
		return errors.Join(fmt.Errorf("guard: adding %s", port), err)
	}
	return nil
}
