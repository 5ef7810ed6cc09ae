package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferry-faas/ferry"
	apiclient "github.com/ferry-faas/ferry/client"
)

func keysCommand(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage API keys (admin keys only)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("keys needs a sub-command: create, list or revoke")
		},
	}
	var role, name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create an API key; its secret is printed once",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if role == "" || name == "" {
				return usageError("keys create needs --role (admin, developer or invoker) and --name")
			}
			var k ferry.APIKey
			var secret string
			if err := c.waiting("", func() (err error) {
				k, secret, err = c.api.CreateKey(cmd.Context(), name, ferry.Role(role))
				return err
			}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(struct {
					ferry.APIKey
					Key string `json:"key"`
				}{k, secret})
			}
			fmt.Fprintln(c.stdout, secret)
			fmt.Fprintf(c.stderr, "Created %s key %q (id %s). The key is shown only this once.\n", k.Role, k.Name, k.ID)
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "", "admin, developer or invoker")
	create.Flags().StringVar(&name, "name", "", "a name that says who or what uses the key")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List API keys, revoked ones included",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var keys []ferry.APIKey
			if err := c.waiting("", func() (err error) { keys, err = c.api.Keys(cmd.Context()); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"keys": nonNil(keys)})
			}
			tw := c.table("ID", "NAME", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED")
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.Role,
					shortTime(k.CreatedAt), shortTimePtr(k.LastUsedAt), shortTimePtr(k.RevokedAt))
			}
			return tw.Flush()
		},
	}
	revoke := deleteCommand(cfg, "revoke ID", "Revoke an API key", "a key ID (see ferry keys list)", "revoked",
		(*apiclient.Client).RevokeKey)
	cmd.AddCommand(create, list, revoke)
	return cmd
}
