package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/roamd/roamd/daemon/api"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// cli carries the global flags and the output writer.
type cli struct {
	out    io.Writer
	v      *viper.Viper
	client *api.Client
}

func newRootCommand(out io.Writer) *cobra.Command {
	c := &cli{out: out, v: viper.New()}
	root := &cobra.Command{
		Use:           "roamctl",
		Short:         "Inspect and steer roamd, the VM mobility daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch o := c.v.GetString("output"); o {
			case "table", "json":
			default:
				return fmt.Errorf("--output %q: want table or json", o)
			}
			c.client = api.NewClient(c.v.GetString("socket"))
			return nil
		},
	}
	root.PersistentFlags().String("socket", "/run/roamd/roamd.sock", "roamd's API socket (env ROAMD_API_SOCKET)")
	root.PersistentFlags().StringP("output", "o", "table", "output format: table or json")
	_ = c.v.BindPFlag("socket", root.PersistentFlags().Lookup("socket"))
	_ = c.v.BindPFlag("output", root.PersistentFlags().Lookup("output"))
	_ = c.v.BindEnv("socket", "ROAMD_API_SOCKET")

	show := &cobra.Command{Use: "show", Short: "Show hosts, peers, moves or status"}
	show.AddCommand(
		&cobra.Command{Use: "hosts", Short: "The host table", Args: cobra.NoArgs, RunE: c.showHosts},
		c.showHostCommand(),
		&cobra.Command{Use: "peers", Short: "BGP sessions", Args: cobra.NoArgs, RunE: c.showPeers},
		&cobra.Command{Use: "moves", Short: "Recent moves with their timings", Args: cobra.NoArgs, RunE: c.showMoves},
		&cobra.Command{Use: "status", Short: "Daemon status", Args: cobra.NoArgs, RunE: c.showStatus},
	)
	hint := &cobra.Command{Use: "hint", Short: "Tell roamd about a migration: arrive, switch or depart"}
	for _, kind := range []string{"arrive", "switch", "depart"} {
		hint.AddCommand(c.hintCommand(kind, kind))
	}
	root.AddCommand(show, hint,
		c.hintCommand("switch", "switch"), // the orchestrator's shortcut: roamctl switch
		c.freezeCommand(true), c.freezeCommand(false))
	return root
}

func (c *cli) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (c *cli) json() bool { return c.v.GetString("output") == "json" }

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) showHosts(*cobra.Command, []string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	hs, err := c.client.Hosts(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.printJSON(hs)
	}
	t := newTable(c.out, "TENANT", "ADDRESS", "MAC", "PORT", "STATE", "SEQ", "FLAGS", "LAST SEEN", "SINCE")
	for _, h := range hs {
		flags := []string{}
		if h.Pinned {
			flags = append(flags, "pinned")
		}
		if h.Frozen {
			flags = append(flags, "frozen")
		}
		if h.ForwardTo != "" {
			flags = append(flags, "fwd→"+h.ForwardTo)
		}
		if h.PathKept {
			flags = append(flags, "path-kept")
		}
		t.row(h.Tenant, h.Address, h.MAC, dash(h.Port), h.State, h.Sequence, dash(strings.Join(flags, ",")),
			seen(h.LastSource, h.LastSeen), ago(h.Since))
	}
	return t.flush()
}

func (c *cli) showHostCommand() *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "host IP",
		Short: "One host with its history of moves and the other sites' claims",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := c.ctx()
			defer cancel()
			h, err := c.client.Host(ctx, tenant, args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(h)
			}
			fmt.Fprintf(c.out, "Host %s (tenant %s)\n", h.Address, h.Tenant)
			fmt.Fprintf(c.out, "  state %s, sequence %d, MAC %s, port %s, since %s\n",
				h.State, h.Sequence, dash(h.MAC), dash(h.Port), ago(h.Since))
			if h.ForwardTo != "" {
				fmt.Fprintf(c.out, "  forwarding to %s until %s\n", h.ForwardTo, h.ForwardUntil.Format(time.RFC3339Nano))
			}
			fmt.Fprintln(c.out, "\nClaims by other sites:")
			t := newTable(c.out, "  ORIGIN", "SEQ", "STICKY", "MAC")
			for _, cl := range h.RemoteClaims {
				t.row("  "+dash(cl.Origin), cl.Sequence, cl.Sticky, dash(cl.MAC))
			}
			if err := t.flush(); err != nil {
				return err
			}
			fmt.Fprintln(c.out, "\nHistory:")
			t = newTable(c.out, "  TIME", "DIRECTION", "FROM", "TO", "SEQ", "SOURCE", "PORT")
			for _, m := range h.History {
				t.row("  "+m.Time.Format("15:04:05.000"), m.Direction, dash(m.From), dash(m.To), m.Sequence, m.Source, dash(m.Port))
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant of the host (default: the first configured)")
	return cmd
}

func (c *cli) showPeers(*cobra.Command, []string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	ps, err := c.client.Peers(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.printJSON(ps)
	}
	t := newTable(c.out, "TENANT", "PEER", "AS", "STATE", "UP/DOWN", "RCVD", "ACCEPTED", "REJECTED", "SENT", "ADD-PATH", "LAST ERROR")
	for _, p := range ps {
		addPath := "no"
		if p.AddPathRx {
			addPath = "rx"
		}
		t.row(p.Tenant, p.Address, p.ASN, p.State, ago(p.Since), p.Received, p.Accepted, p.Rejected, p.Advertised, addPath, dash(p.LastError))
	}
	return t.flush()
}

func (c *cli) showMoves(*cobra.Command, []string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	ms, err := c.client.Moves(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.printJSON(ms)
	}
	t := newTable(c.out, "TIME", "TENANT", "ADDRESS", "DIRECTION", "FROM", "TO", "SEQ", "SOURCE", "DETECT→ROUTE", "DETECT→ANNOUNCE", "OLD WITHDRAWN")
	for _, m := range ms {
		t.row(m.Time.Format("15:04:05.000"), m.Tenant, m.Address, m.Direction, dash(m.From), dash(m.To), m.Sequence, m.Source,
			micros(m.DetectToRouteUS), micros(m.DetectToAnnounceUS), micros(m.OldWithdrawnUS))
	}
	return t.flush()
}

func (c *cli) showStatus(*cobra.Command, []string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.client.Status(ctx)
	if err != nil {
		return err
	}
	if c.json() {
		return c.printJSON(st)
	}
	fmt.Fprintf(c.out, "roamd %s, router ID %s, AS %d, up %s\n", st.Version, st.RouterID, st.ASN, ago(st.Started))
	fmt.Fprintf(c.out, "hosts: %s\n", countsText(st.Hosts))
	t := newTable(c.out, "PORT", "TENANT")
	for _, p := range st.Ports {
		t.row(p.Name, p.Tenant)
	}
	return t.flush()
}

func (c *cli) hintCommand(use, kind string) *cobra.Command {
	var h api.Hint
	short := map[string]string{
		"arrive": "A VM is about to arrive here: stage its port (neighbour entry, tap readied)",
		"switch": "The VM is paused at the source: claim it here now",
		"depart": "The VM left this hypervisor: withdraw it now",
	}[kind]
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			h.Kind = kind
			ctx, cancel := c.ctx()
			defer cancel()
			res, err := c.client.Hint(ctx, h)
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(res)
			}
			t := newTable(c.out, "TENANT", "ADDRESS", "MAC", "PORT", "STATE", "SEQ")
			for _, x := range res.Hosts {
				t.row(x.Tenant, x.Address, x.MAC, dash(x.Port), x.State, x.Sequence)
			}
			for _, r := range res.Refused {
				fmt.Fprintln(c.out, "refused:", r)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&h.MAC, "mac", "", "the VM's MAC")
	cmd.Flags().StringSliceVar(&h.Addresses, "ip", nil, "the VM's addresses (default: those bound to --mac)")
	cmd.Flags().StringVar(&h.Port, "port", "", "the VM's port on this hypervisor")
	cmd.Flags().StringVar(&h.Tenant, "tenant", "", "tenant (default: the port's)")
	return cmd
}

func (c *cli) freezeCommand(freeze bool) *cobra.Command {
	var tenant string
	use, short := "freeze IP", "Freeze a host where it is: no more moves until unfrozen"
	if !freeze {
		use, short = "unfreeze IP", "Let a frozen host move again"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			ctx, cancel := c.ctx()
			defer cancel()
			h, err := c.client.Freeze(ctx, api.FreezeRequest{Tenant: tenant, Address: args[0], Frozen: freeze})
			if err != nil {
				return err
			}
			if c.json() {
				return c.printJSON(h)
			}
			fmt.Fprintf(c.out, "%s/%s: %s, frozen %v\n", h.Tenant, h.Address, h.State, h.Frozen)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant of the host (default: the first configured)")
	return cmd
}
