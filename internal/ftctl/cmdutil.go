package ftctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// AddJobCommands adds the job commands (submit, list, status, watch, logs, pause,
// resume, cancel, download, system) to root.
func AddJobCommands(root *cobra.Command, f *Factory) {
	cmds := []*cobra.Command{
		NewCmdSubmit(f, nil),
		NewCmdList(f, nil),
		NewCmdJobStatus(f, nil),
		NewCmdWatch(f, nil),
		NewCmdLogs(f, nil),
		NewCmdControl(f, "pause", nil),
		NewCmdControl(f, "resume", nil),
		NewCmdControl(f, "cancel", nil),
		NewCmdDownload(f, nil),
		NewCmdSystem(f, nil),
	}
	for _, c := range cmds {
		if strings.Contains(c.Use, "JOB") {
			c.ValidArgsFunction = completeJobIDs(f)
		}
	}
	root.AddCommand(cmds...)
}

// completeJobIDs completes a JOB argument with the caller's latest jobs.
func completeJobIDs(f *Factory) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := f.apiClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		var page JobList
		if err := c.Do(ctx, http.MethodGet, "/api/jobs", url.Values{"limit": {"50"}}, nil, nil, &page); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, j := range page.Jobs {
			if strings.HasPrefix(j.ID, prefix) {
				out = append(out, j.ID+"\t"+strings.TrimSpace(j.Spec.Name+" "+string(j.State)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// apiClient returns a client for the configured gateway that carries the token.
func (f *Factory) apiClient() (*APIClient, error) {
	server, err := f.Server()
	if err != nil {
		return nil, err
	}
	hc, err := f.HTTPClient()
	if err != nil {
		return nil, err
	}
	return &APIClient{BaseURL: server, HTTP: hc}, nil
}

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// jobArg accepts exactly one JOB argument that looks like a job id.
func jobArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("%s needs exactly one JOB argument, got %d", cmd.CommandPath(), len(args))
	}
	if !jobIDRE.MatchString(args[0]) {
		return usageErrorf("JOB %q is not a job id (letters, digits, '_', '.', '-')", args[0])
	}
	return nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// printJSON writes v indented, or raw JSON as it came from the gateway.
func printJSON(w io.Writer, v any) error {
	if raw, ok := v.(json.RawMessage); ok {
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			_, err = w.Write(raw)
			return err
		}
		v = x
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a character device (an interactive terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
