package main

import (
	"fmt"
	"net/url"

	"github.com/spf13/cobra"
)

type keyRecord struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Prefix     string `json:"prefix"`
	Role       string `json:"role"`
	Key        string `json:"key"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at"`
	RevokedAt  string `json:"revoked_at"`
}

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
			body, ctype := jsonBody(map[string]string{"role": role, "name": name})
			_, _, res, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/keys", body: body, ctype: ctype})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			var k keyRecord
			if err := jsonUnmarshal(res, &k); err != nil {
				return err
			}
			fmt.Fprintln(c.stdout, k.Key)
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
			var res struct {
				Keys []keyRecord `json:"keys"`
			}
			body, err := c.getJSON(cmd.Context(), "/v1/keys", &res)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			tw := c.table("ID", "NAME", "PREFIX", "ROLE", "CREATED", "LAST USED", "REVOKED")
			for _, k := range res.Keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, k.Role,
					shortTime(k.CreatedAt), shortTime(k.LastUsedAt), shortTime(k.RevokedAt))
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key",
		Args:  exactArgs(1, "a key ID (see ferry keys list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if _, _, _, err := c.do(cmd.Context(), request{method: "DELETE", path: "/v1/keys/" + url.PathEscape(args[0])}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"revoked": args[0]})
			}
			fmt.Fprintf(c.stdout, "Revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
