// Command roamctl inspects and steers a running roamd through its local API,
// in the style of gobgp and vtysh: tables by default, -o json everywhere.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "roamctl:", err)
		os.Exit(1)
	}
}
