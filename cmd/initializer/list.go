package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/initializer/initializer/connections"
	"github.com/initializer/initializer/fault"
	"github.com/initializer/initializer/secret"
)

func (a *app) listCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the catalog's connections: name, kind, and whether a built-in handler serves it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cat, err := connections.Load(a.g.catalog, a.getenv)
			if err != nil {
				msg := secret.Scrub(err.Error())
				if a.g.logFormat == "json" {
					a.log.Error("failed", "command", "list", "exitCode", int(fault.ClassOf(err)), "class", fault.ClassOf(err).String(), "error", msg)
				} else {
					fmt.Fprintf(a.stderr, "error: %s\n", msg)
				}
				return &commandError{err}
			}
			type row struct {
				Name        string `json:"name"`
				Kind        string `json:"kind"`
				Handler     string `json:"handler"`
				Role        string `json:"role"`
				Description string `json:"description,omitempty"`
			}
			rows := make([]row, 0, len(cat.Connections))
			for _, c := range cat.Connections {
				h := "custom"
				if _, builtIn := a.reg.For(c.Kind); builtIn {
					h = "built-in"
				}
				rows = append(rows, row{c.Name, string(c.Kind), h, c.Role, c.Description})
			}
			if asJSON {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tKIND\tHANDLER\tROLE\tDESCRIPTION")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Kind, r.Handler, r.Role, r.Description)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}
