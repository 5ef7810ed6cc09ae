package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

type aliasTargetJSON struct {
	Version           int     `json:"version"`
	AdditionalVersion int     `json:"additional_version"`
	AdditionalWeight  float64 `json:"additional_weight"`
}

// String is the target as `ferry alias set` takes it: 6, or 6=90%,7=10%.
func (t aliasTargetJSON) String() string {
	if t.AdditionalVersion == 0 {
		return strconv.Itoa(t.Version)
	}
	w := t.AdditionalWeight * 100
	return fmt.Sprintf("%d=%s%%,%d=%s%%", t.Version, strconv.FormatFloat(100-w, 'f', -1, 64),
		t.AdditionalVersion, strconv.FormatFloat(w, 'f', -1, 64))
}

type aliasJSON struct {
	Function string `json:"function"`
	Name     string `json:"name"`
	aliasTargetJSON
	Previous    *aliasTargetJSON `json:"previous"`
	Description string           `json:"description"`
	UpdatedAt   string           `json:"updated_at"`
}

// parseAliasTarget reads VERSION or V1=W1%,V2=W2% (weights in percent, adding
// up to 100; the first version is the main one).
func parseAliasTarget(s string) (map[string]any, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return map[string]any{"version": n}, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return nil, usageError("TARGET %q: a version (7) or two versions with weights in percent (6=90,7=10)", s)
	}
	var vs [2]int
	var ws [2]float64
	for i, p := range parts {
		v, w, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		f, ferr := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(w), "%"), 64)
		if !ok || err != nil || ferr != nil {
			return nil, usageError("TARGET %q: %q is not VERSION=PERCENT", s, p)
		}
		vs[i], ws[i] = n, f
	}
	if ws[0]+ws[1] != 100 {
		return nil, usageError("TARGET %q: the weights must add up to 100, not %g", s, ws[0]+ws[1])
	}
	return map[string]any{"version": vs[0], "additional_version": vs[1], "additional_weight": ws[1] / 100}, nil
}

func aliasCommand(cfg *clientConfig) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alias",
		Short: "Name versions of a function (prod, canary), split traffic between two",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("alias needs a sub-command: set, ls or rm")
		},
	}
	var description string
	set := &cobra.Command{
		Use:   "set FUNCTION ALIAS TARGET",
		Short: "Point an alias at a version, or at two versions with weights in percent",
		Example: `  ferry alias set hello prod 6
  ferry alias set hello prod 6=90,7=10     # 10% of the invocations run version 7
  ferry invoke hello --alias prod`,
		Args: exactArgs(3, "FUNCTION, ALIAS and TARGET (a version, or 6=90,7=10)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			body, err := parseAliasTarget(args[2])
			if err != nil {
				return err
			}
			if description != "" {
				body["description"] = description
			}
			r, ctype := jsonBody(body)
			_, _, res, err := c.do(cmd.Context(), request{method: "PUT", body: r, ctype: ctype,
				path: "/v1/functions/" + url.PathEscape(args[0]) + "/aliases/" + url.PathEscape(args[1])})
			if err != nil {
				return err
			}
			return c.printAlias(res, "")
		},
	}
	set.Flags().StringVar(&description, "description", "", "what the alias is for")
	ls := &cobra.Command{
		Use:     "ls FUNCTION",
		Aliases: []string{"list"},
		Short:   "List a function's aliases",
		Args:    exactArgs(1, "a FUNCTION name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var res struct {
				Aliases []aliasJSON `json:"aliases"`
			}
			body, err := c.getJSON(cmd.Context(), "/v1/functions/"+url.PathEscape(args[0])+"/aliases", &res)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			tw := c.table("ALIAS", "TARGET", "PREVIOUS", "UPDATED", "DESCRIPTION")
			for _, a := range res.Aliases {
				prev := "-"
				if a.Previous != nil {
					prev = a.Previous.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.aliasTargetJSON, prev, shortTimeOf(a.UpdatedAt), orDash(a.Description))
			}
			return tw.Flush()
		},
	}
	rm := &cobra.Command{
		Use:   "rm FUNCTION ALIAS",
		Short: "Delete an alias",
		Args:  exactArgs(2, "FUNCTION and ALIAS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if _, _, _, err := c.do(cmd.Context(), request{method: "DELETE",
				path: "/v1/functions/" + url.PathEscape(args[0]) + "/aliases/" + url.PathEscape(args[1])}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"deleted": args[1]})
			}
			fmt.Fprintf(c.stdout, "Deleted alias %s of %s\n", args[1], args[0])
			return nil
		},
	}
	cmd.AddCommand(set, ls, rm)
	return cmd
}

func rollbackCommand(cfg *clientConfig) *cobra.Command {
	var alias string
	cmd := &cobra.Command{
		Use:   "rollback FUNCTION",
		Short: "Point an alias back at its previous target",
		Long: `Point an alias back at the target it had before its last change. Without
--alias, the function's only alias. A second rollback undoes the first.`,
		Example: `  ferry rollback hello             # the function has one alias
  ferry rollback hello --alias prod`,
		Args: exactArgs(1, "a FUNCTION name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			fn := url.PathEscape(args[0])
			if alias == "" {
				var res struct {
					Aliases []aliasJSON `json:"aliases"`
				}
				if _, err := c.getJSON(cmd.Context(), "/v1/functions/"+fn+"/aliases", &res); err != nil {
					return err
				}
				if len(res.Aliases) != 1 {
					names := make([]string, len(res.Aliases))
					for i, a := range res.Aliases {
						names[i] = a.Name
					}
					return usageError("%s has %d aliases (%s): name one with --alias", args[0], len(names), strings.Join(names, ", "))
				}
				alias = res.Aliases[0].Name
			}
			_, _, res, err := c.do(cmd.Context(), request{method: "POST",
				path: "/v1/functions/" + fn + "/aliases/" + url.PathEscape(alias) + "/rollback"})
			if err != nil {
				return err
			}
			return c.printAlias(res, "rolled back: ")
		},
	}
	cmd.Flags().StringVar(&alias, "alias", "", "the alias to roll back (default: the function's only alias)")
	return cmd
}

func (c *client) printAlias(res []byte, prefix string) error {
	if c.json {
		return c.printJSON(res)
	}
	var a aliasJSON
	if err := jsonUnmarshal(res, &a); err != nil {
		return err
	}
	line := fmt.Sprintf("%salias %s of %s -> %s", prefix, a.Name, a.Function, a.aliasTargetJSON)
	if a.Previous != nil {
		line += fmt.Sprintf(" (was %s)", a.Previous)
	}
	fmt.Fprintln(c.stdout, line)
	return nil
}
