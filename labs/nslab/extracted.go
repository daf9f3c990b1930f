package nslab

import (
	"context"
	"os"

	"github.com/roamd/roamd/labs/clab"
)

// UpExtracted brings up a topology that lives elsewhere than on disk (a lab
// package embeds its files) and waits until it is ready. extract writes the
// topology file and every file it binds into an empty directory and returns
// the topology file's path there; the directory is removed once Up has
// copied each node's files into the run directory. ready (optional) waits
// until the lab works, e.g. its BGP sessions are up; when it fails, the lab
// is returned with the error, still up, for its logs.
func UpExtracted(ctx context.Context, extract func(dir string) (string, error), ready func(context.Context, *Lab) error, opts Options) (*Lab, error) {
	dir, err := os.MkdirTemp("", "roamlab-topology-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path, err := extract(dir)
	if err != nil {
		return nil, err
	}
	topo, err := clab.Load(path)
	if err != nil {
		return nil, err
	}
	lab, err := Up(ctx, topo, opts)
	if err != nil || ready == nil {
		return lab, err
	}
	return lab, ready(ctx, lab)
}
