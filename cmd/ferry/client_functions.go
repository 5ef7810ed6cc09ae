package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// functionJSON is the part of a function version the tables show.
type functionJSON struct {
	Name          string            `json:"name"`
	Version       int               `json:"version"`
	LatestVersion int               `json:"latest_version"`
	Runtime       string            `json:"runtime"`
	Handler       string            `json:"handler"`
	Checksum      string            `json:"checksum"`
	CodeSize      float64           `json:"code_size"`
	Limits        map[string]any    `json:"limits"`
	Env           map[string]string `json:"env"`
	Secrets       []string          `json:"secrets"`
	Description   string            `json:"description"`
	CreatedAt     string            `json:"created_at"`
	UpdatedAt     string            `json:"updated_at"`
}

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
			body, ctype, err := deployForm(args[0], f)
			if err != nil {
				return err
			}
			_, _, res, err := c.do(cmd.Context(), request{method: "POST", path: "/v1/functions", body: body, ctype: ctype, wait: "uploading"})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			var v functionJSON
			if err := jsonUnmarshal(res, &v); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Deployed %s version %d (%s, handler %s, %s, sha256 %.12s)\n",
				v.Name, v.Version, v.Runtime, v.Handler, humanBytes(v.CodeSize), v.Checksum)
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

// deployForm builds the multipart body of a deploy.
func deployForm(path string, f deployFlags) (io.Reader, string, error) {
	if f.runtime == "" || f.handler == "" {
		return nil, "", usageError("deploy needs --runtime and --handler")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", usageError("%v", err)
	}
	var code []byte
	filename := filepath.Base(path)
	if fi.IsDir() {
		if code, err = packDir(path); err != nil {
			return nil, "", usageError("packing %s: %v", path, err)
		}
		filename = "bundle.tar.gz"
	} else if code, err = os.ReadFile(path); err != nil {
		return nil, "", usageError("%v", err)
	}
	name := f.name
	if name == "" {
		name = defaultName(path)
	}
	fields := [][2]string{{"name", name}, {"runtime", f.runtime}, {"handler", f.handler}}
	if f.timeout != "" {
		secs, err := parseSeconds(f.timeout)
		if err != nil {
			return nil, "", err
		}
		fields = append(fields, [2]string{"timeout_seconds", strconv.Itoa(secs)})
	}
	add := func(k string, v int) {
		if v != 0 {
			fields = append(fields, [2]string{k, strconv.Itoa(v)})
		}
	}
	add("memory_mb", f.memory)
	add("retries", f.retries)
	add("max_concurrency", f.maxConcurrency)
	if f.cpus != 0 {
		fields = append(fields, [2]string{"cpus", strconv.FormatFloat(f.cpus, 'f', -1, 64)})
	}
	if f.network != "" {
		if _, err := strconv.ParseBool(f.network); err != nil {
			return nil, "", usageError("--network must be true or false, not %q", f.network)
		}
		fields = append(fields, [2]string{"network", f.network})
	}
	if f.description != "" {
		fields = append(fields, [2]string{"description", f.description})
	}
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			return nil, "", usageError("--env %q is not KEY=VALUE", kv)
		}
		fields = append(fields, [2]string{"env", kv})
	}
	for _, name := range f.secrets {
		fields = append(fields, [2]string{"secrets", name})
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range fields {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return nil, "", err
		}
	}
	fw, err := mw.CreateFormFile("code", filename)
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(code); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return &buf, mw.FormDataContentType(), nil
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
			path := "/v1/functions/" + url.PathEscape(args[0])
			if version != 0 { // the API refuses a negative one
				path += "?version=" + strconv.Itoa(version)
			}
			var v functionJSON
			body, err := c.getJSON(cmd.Context(), path, &v)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(body)
			}
			tw := c.table("FIELD", "VALUE")
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("name", v.Name)
			row("version", v.Version)
			row("runtime", v.Runtime)
			row("handler", v.Handler)
			row("checksum", v.Checksum)
			row("code size", humanBytes(v.CodeSize))
			for _, k := range []string{"timeout_seconds", "memory_mb", "cpus", "max_concurrency", "network", "retries"} {
				row(k, v.Limits[k])
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

// fetchAll follows next_cursor through every page of a listing.
func fetchAll[T any](c *client, cmd *cobra.Command, path, field string, max int) ([]T, error) {
	var all []T
	cursor := ""
	for {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		limit := 200
		if max > 0 && max-len(all) < limit {
			limit = max - len(all)
		}
		p := path + sep + "limit=" + strconv.Itoa(limit)
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		var page map[string]jsonRaw
		if _, err := c.getJSON(cmd.Context(), p, &page); err != nil {
			return nil, err
		}
		var items []T
		if err := jsonUnmarshal(page[field], &items); err != nil {
			return nil, err
		}
		all = append(all, items...)
		if err := jsonUnmarshal(page["next_cursor"], &cursor); err != nil || cursor == "" || (max > 0 && len(all) >= max) {
			return all, nil
		}
	}
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
			fns, err := fetchAll[functionJSON](c, cmd, "/v1/functions", "functions", 0)
			if err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"functions": nonNil(fns)})
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
			vs, err := fetchAll[functionJSON](c, cmd, "/v1/functions/"+url.PathEscape(args[0])+"/versions", "versions", 0)
			if err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"versions": nonNil(vs)})
			}
			tw := c.table("VERSION", "RUNTIME", "HANDLER", "SIZE", "CHECKSUM", "CREATED")
			for _, v := range vs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.12s\t%s\n", v.Version, v.Runtime, v.Handler, humanBytes(v.CodeSize), v.Checksum, shortTime(v.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

func rmCommand(cfg *clientConfig) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Delete a function with all its versions and code (invocation records stay)",
		Args:    exactArgs(1, "a function NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cfg.client(cmd)
			if err != nil {
				return err
			}
			if _, _, _, err := c.do(cmd.Context(), request{method: "DELETE", path: "/v1/functions/" + url.PathEscape(args[0])}); err != nil {
				return err
			}
			if c.json {
				return c.printValue(map[string]any{"deleted": args[0]})
			}
			fmt.Fprintf(c.stdout, "Deleted %s\n", args[0])
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
