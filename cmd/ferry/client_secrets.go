package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

type secretJSON struct {
	Name       string `json:"name"`
	OwnerKeyID string `json:"owner_key_id"`
	KeyID      string `json:"key_id"`
	CreatedAt  string `json:"created_at"`
	UpdatedAt  string `json:"updated_at"`
}

func secretCommand(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "secret",
		Aliases: []string{"secrets"},
		Short:   "Manage secrets (values are write-only)",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("secret needs a sub-command: set, ls or rm")
		},
	}
	var fromFile string
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Create a secret or change its value, read from stdin (or --from-file)",
		Long: `Create a secret or change its value. The value is read from stdin, or from
--from-file, never from an argument (which would stay in the shell's history);
one trailing newline is dropped. Functions deployed with --secret NAME read it as
the environment variable NAME; a new value reaches the invocations that start
after it, without a deploy.`,
		Example: `  printf '%s' "$DB_PASSWORD" | ferry secret set DB_PASSWORD
  ferry secret set TLS_KEY --from-file key.pem
  ferry deploy app/ --runtime python --handler app.handler --secret DB_PASSWORD`,
		Args: exactArgs(1, "a secret NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var value []byte
			if fromFile != "" {
				value, err = os.ReadFile(fromFile)
			} else {
				value, err = io.ReadAll(cmd.InOrStdin())
			}
			if err != nil {
				return usageError("reading the value: %v", err)
			}
			v := strings.TrimSuffix(strings.TrimSuffix(string(value), "\n"), "\r")
			body, ctype := jsonBody(map[string]string{"value": v})
			status, _, res, err := c.do(cmd.Context(), request{method: "PUT", path: "/v1/secrets/" + url.PathEscape(args[0]), body: body, ctype: ctype})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			what := "Changed"
			if status == 201 {
				what = "Created"
			}
			fmt.Fprintf(c.stdout, "%s secret %s (%d bytes)\n", what, args[0], len(v))
			return nil
		},
	}
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file instead of stdin")
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the secrets' names",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var res struct {
				Secrets []secretJSON `json:"secrets"`
			}
			body, err := c.getJSON(cmd.Context(), "/v1/secrets", &res)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			tw := c.table("NAME", "OWNER KEY", "UPDATED")
			for _, s := range res.Secrets {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, orDash(s.OwnerKeyID), shortTimeOf(s.UpdatedAt))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a secret (refused while a function's latest version reads it)",
		Args:  exactArgs(1, "a secret NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if _, _, _, err := c.do(cmd.Context(), request{method: "DELETE", path: "/v1/secrets/" + url.PathEscape(args[0])}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"deleted": args[0]})
			}
			fmt.Fprintf(c.stdout, "Deleted secret %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(set, ls, rm)
	return cmd
}
