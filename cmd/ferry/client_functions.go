package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-faas/ferry"
	apiclient "github.com/ferry-faas/ferry/client"
)

type deployFlags struct {
	name, runtime, handler, description, network string
	timeout                                      string
	memory, retries, maxConcurrency              int
	cpus                                         float64
	env, secrets                                 []string
}

func deployCommand(cfg *clientConfig) *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy PATH",
		Short: "Deploy a function: a folder (packed as .tar.gz), a .zip/.tar.gz or one source file",
		Example: `  ferry deploy examples/hello-python --name hello --runtime python --handler app.handler
  ferry deploy handler.js --runtime nodejs --handler handler.handler --timeout 10s --env GREETING=hi`,
		Args: exactArgs(1, "the PATH of a folder or file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			d, err := deployOf(args[0], f)
			if err != nil {
				return err
			}
			var v ferry.Version
			if err := c.waiting("uploading", func() (err error) { v, err = c.api.Deploy(cmd.Context(), d); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(v)
			}
			fmt.Fprintf(c.stdout, "Deployed %s version %d (%s, handler %s, %s, sha256 %.12s)\n",
				v.Function, v.Version, v.Runtime, v.Handler, humanBytes(float64(v.CodeSize)), v.Checksum)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "function name (default: the file or folder name)")
	fl.StringVar(&f.runtime, "runtime", "", "python, nodejs or go (required)")
	fl.StringVar(&f.handler, "handler", "", "handler: file.function (python, nodejs) or the Go function name (required)")
	fl.StringVar(&f.timeout, "timeout", "", "timeout per invocation: seconds or a duration such as 30s (default 30s)")
	fl.IntVar(&f.memory, "memory", 0, "memory limit in MB (default 128)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit, e.g. 0.5 (default 0.5)")
	fl.StringArrayVar(&f.env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "a secret the function reads, as the env variable of its name (repeatable; see ferry secret)")
	fl.StringVar(&f.network, "network", "", "allow network access: true or false (default false)")
	fl.Lookup("network").NoOptDefVal = "true"
	fl.IntVar(&f.retries, "retries", 0, "retries after a failure of the function (default 0)")
	fl.IntVar(&f.maxConcurrency, "max-concurrency", 0, "concurrent invocations of this function (default 10)")
	fl.StringVar(&f.description, "description", "", "description")
	return cmd
}

var invalidNameChars = regexp.MustCompile(`[^a-z0-9-]+`)

// defaultName derives a function name from a path: "Hello_World.py" → "hello-world".
func defaultName(p string) string {
	base := filepath.Base(filepath.Clean(p))
	for _, ext := range []string{".tar.gz", ".tgz", ".zip", ".py", ".js", ".mjs", ".cjs", ".go"} {
		base = strings.TrimSuffix(base, ext)
	}
	return strings.Trim(invalidNameChars.ReplaceAllString(strings.ToLower(base), "-"), "-")
}

// deployOf reads the code at path (a folder is packed as .tar.gz) and the
// flags into a deploy.
func deployOf(path string, f deployFlags) (apiclient.Deploy, error) {
	var d apiclient.Deploy
	if f.runtime == "" || f.handler == "" {
		return d, usageError("deploy needs --runtime and --handler")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return d, usageError("%v", err)
	}
	d.Filename = filepath.Base(path)
	if fi.IsDir() {
		if d.Code, err = packDir(path); err != nil {
			return d, usageError("packing %s: %v", path, err)
		}
		d.Filename = "bundle.tar.gz"
	} else if d.Code, err = os.ReadFile(path); err != nil {
		return d, usageError("%v", err)
	}
	d.Name, d.Runtime, d.Handler, d.Description = f.name, ferry.Runtime(f.runtime), f.handler, f.description
	if d.Name == "" {
		d.Name = defaultName(path)
	}
	if f.timeout != "" {
		if d.Limits.TimeoutSeconds, err = parseSeconds(f.timeout); err != nil {
			return d, err
		}
	}
	d.Limits.MemoryMB, d.Limits.Retries, d.Limits.MaxConcurrency, d.Limits.CPUs = f.memory, f.retries, f.maxConcurrency, f.cpus
	if f.network != "" {
		if d.Limits.Network, err = strconv.ParseBool(f.network); err != nil {
			return d, usageError("--network must be true or false, not %q", f.network)
		}
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return d, usageError("--env %q is not KEY=VALUE", kv)
		}
		if d.Env == nil {
			d.Env = map[string]string{}
		}
		d.Env[k] = v
	}
	d.Secrets = f.secrets
	return d, nil
}

// parseSeconds reads "30", "30s" or "2m" as whole seconds.
func parseSeconds(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second || d%time.Second != 0 {
		return 0, usageError("--timeout %q must be whole seconds, such as 30 or 30s or 2m", s)
	}
	return int(d / time.Second), nil
}

// packDir packs a folder's content (not the folder itself) as a .tar.gz. The
// archive is reproducible: sorted entries, zero times and owners, so the same
// files give the same checksum. .git folders are left out; symbolic links are
// kept as links (the server checks where they point).
func packDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case info.Mode().IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			return nil // sockets, devices: not code
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func getCommand(cfg *clientConfig) *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a function's latest version (or --version N)",
		Args:  exactArgs(1, "a function NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var v ferry.Version
			if err := c.waiting("", func() (err error) { v, err = c.api.Function(cmd.Context(), args[0], version); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(v)
			}
			tw := c.table("FIELD", "VALUE")
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("name", v.Function)
			row("version", v.Version)
			row("runtime", v.Runtime)
			row("handler", v.Handler)
			row("checksum", v.Checksum)
			row("code size", humanBytes(float64(v.CodeSize)))
			l := v.Limits
			for _, kv := range []struct {
				k string
				v any
			}{{"timeout_seconds", l.TimeoutSeconds}, {"memory_mb", l.MemoryMB}, {"cpus", l.CPUs},
				{"max_concurrency", l.MaxConcurrency}, {"network", l.Network}, {"retries", l.Retries}} {
				row(kv.k, kv.v)
			}
			for _, k := range sortedKeys(v.Env) {
				row("env "+k, v.Env[k])
			}
			for _, name := range v.Secrets {
				row("secret", name)
			}
			row("description", orDash(v.Description))
			row("created", shortTime(v.CreatedAt))
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "a specific version")
	return cmd
}

func lsCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List functions",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var fns []ferry.Function
			if err := c.waiting("", func() (err error) { fns, err = c.api.Functions(cmd.Context(), 0); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"functions": fns})
			}
			tw := c.table("NAME", "VERSION", "UPDATED", "DESCRIPTION")
			for _, f := range fns {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", f.Name, f.LatestVersion, shortTime(f.UpdatedAt), orDash(f.Description))
			}
			return tw.Flush()
		},
	}
}

func versionsCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a function's versions, newest first",
		Args:  exactArgs(1, "a function NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			var vs []ferry.Version
			if err := c.waiting("", func() (err error) { vs, err = c.api.Versions(cmd.Context(), args[0], 0); return err }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"versions": vs})
			}
			tw := c.table("VERSION", "RUNTIME", "HANDLER", "SIZE", "CHECKSUM", "CREATED")
			for _, v := range vs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.12s\t%s\n", v.Version, v.Runtime, v.Handler, humanBytes(float64(v.CodeSize)), v.Checksum, shortTime(v.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func rmCommand(cfg *clientConfig) *cobra.Command {
	cmd := deleteCommand(cfg, "rm NAME", "Delete a function with all its versions and code (invocation records stay)",
		"a function NAME", "deleted", (*apiclient.Client).DeleteFunction)
	cmd.Aliases = []string{"delete"}
	return cmd
}

// deleteCommand is a command that removes one thing named by its argument
// (a function, a chain, a key) and says so: "Deleted NAME", or with -o json
// {"deleted": "NAME"} (done names the action: deleted, revoked).
func deleteCommand(cfg *clientConfig, use, short, argName, done string,
	del func(c *apiclient.Client, ctx context.Context, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1, argName),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if err := c.waiting("", func() error { return del(c.api, cmd.Context(), args[0]) }); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{done: args[0]})
			}
			fmt.Fprintf(c.stdout, "%s%s %s\n", strings.ToUpper(done[:1]), done[1:], args[0])
			return nil
		},
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
